//! A private `redis-server` serving TLS on loopback, with a private CA made
//! by the test: the server's certificate (for `127.0.0.1` and `localhost`),
//! a client certificate, and a second CA nobody trusts. The server also
//! listens on its unix socket (the default user, no TLS) for the test's own
//! set-up, e.g. `ACL SETUSER`. Include it next to `redis_server.rs`.

use std::path::PathBuf;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

use super::redis_server::RedisServer;

/// PEM files in a temporary directory.
pub struct Pki {
    _dir: tempfile::TempDir,
    /// The CA that signed the server's and the client's certificates.
    pub ca: PathBuf,
    /// A CA that signed nothing here.
    pub stranger_ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Pki {
    pub fn create() -> Pki {
        let dir = tempfile::tempdir().expect("a directory for the certificates");
        let write = |name: &str, pem: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).expect("writing a certificate");
            path
        };
        let ca = new_ca("onesoidc test CA");
        let stranger = new_ca("a CA nobody trusts");
        let leaf = |names: Vec<String>| {
            let key = KeyPair::generate().expect("a key");
            let cert = CertificateParams::new(names)
                .expect("certificate names")
                .signed_by(&key, &ca)
                .expect("a certificate signed by the CA");
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert, server_key) = leaf(vec!["127.0.0.1".into(), "localhost".into()]);
        let (client_cert, client_key) = leaf(vec!["onesoidc-client".into()]);
        Pki {
            ca: write("ca.pem", ca.pem()),
            stranger_ca: write("stranger-ca.pem", stranger.pem()),
            server_cert: write("server.pem", server_cert),
            server_key: write("server.key", server_key),
            client_cert: write("client.pem", client_cert),
            client_key: write("client.key", client_key),
            _dir: dir,
        }
    }
}

fn new_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("a CA key"))
        .expect("a self-signed CA")
}

/// A TLS redis-server and its certificates.
pub struct TlsRedis {
    pub server: RedisServer,
    pub pki: Pki,
    pub port: u16,
}

impl TlsRedis {
    /// Starts one on a free loopback port; `auth_clients` is redis-server's
    /// `--tls-auth-clients` (`yes`: a client certificate is required).
    pub fn start(binary: String, auth_clients: &str) -> TlsRedis {
        let pki = Pki::create();
        let mut last_error = String::new();
        // A free port may be taken between finding it and the server
        // binding it: try a few.
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let path = |p: &PathBuf| p.display().to_string();
            let args = vec![
                "--tls-port".into(),
                port.to_string(),
                "--bind".into(),
                "127.0.0.1".into(),
                "--tls-cert-file".into(),
                path(&pki.server_cert),
                "--tls-key-file".into(),
                path(&pki.server_key),
                "--tls-ca-cert-file".into(),
                path(&pki.ca),
                "--tls-auth-clients".into(),
                auth_clients.into(),
            ];
            match RedisServer::start_with(binary.clone(), args) {
                Ok(server) => return TlsRedis { server, pki, port },
                Err(e) => last_error = e,
            }
        }
        panic!("a TLS redis-server did not start: {last_error}");
    }

    /// `rediss://[userinfo@]127.0.0.1:<port>`.
    pub fn url(&self, userinfo: Option<&str>) -> String {
        match userinfo {
            Some(userinfo) => format!("rediss://{userinfo}@127.0.0.1:{}", self.port),
            None => format!("rediss://127.0.0.1:{}", self.port),
        }
    }
}
