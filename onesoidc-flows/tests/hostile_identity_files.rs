//! Hostile and broken identity files: device.yml and private keys that are
//! empty, binary, huge, of the wrong YAML types, YAML bombs, symlinks and
//! loops, unreadable, readable by others, of the wrong key type or size,
//! encrypted, or not keys at all. Each ends in a specific error that names
//! the file (or, for a key others can read, a warning), quickly and without
//! exhausting memory.
//!
//! The files are made in a temp dir at test time. The PEM constants below
//! are throwaway keys and a certificate generated with openssl for these
//! tests only; they protect nothing.
//!
//! JWT rejections (alg none, HS256 signed with the public key, unknown kid,
//! expired, iat in the future, wrong iss or aud) are in `id_token.rs`,
//! each with its own `IdTokenError`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use onesoidc_flows::core::{ConfigError, DeviceConfig, Error, KeyError, KeyType, PemSigner};
use onesoidc_flows::fs::MAX_IDENTITY_FILE_BYTES;
use onesoidc_flows::{DeviceIdentity, IdentityPaths, load_device_config};

/// RSA 1024-bit, PKCS#1 (`openssl genrsa -traditional 1024`).
const RSA_1024_PKCS1: &str = "\
-----BEGIN RSA PRIVATE KEY-----
MIICXAIBAAKBgQDWtKfe7UmYS6mtvxX9V6n5CVDMv5nLnOBj6qnwM9v1+VlFAEl0
/6KDPYWc3Pj7Ru9KOMZzCn0h/7MqjfjdO9D2SuFO2xeiFPggU8JT6x/C38kaDeqw
zs6IiFT7D5xUVPx9CZ05WM6qdUZxLMzem2PV041i9h88AphVT1XpZdG7TQIDAQAB
AoGAPEe8WfqFDx0vJnjf06EpN6JF7TZeF6yT03mu/KGSwByh052hAhhDqFU9jiz8
OpBP3qbSELqBJ2qDAw+ZL4P7xqaObk89OdWph4S9LHeMTsd0iSdj36cuSLPiOspC
3m/3hYhfYqL5Ron8k7B6IcPRV+58hQx4DsN38uJVfHmswIECQQD6qTTbZmCe91X0
9SWD1cxXok8kE2HeWDPU/94SxiuYUR6AJFJJYuQDMCDleW8EVVdUoVFEDF90ZQcR
XR3xiuQ7AkEA20dk0+aOOIQrOqxw5dTIZkTWGb5HN4DLixxd0MroXRZeF9+YOVQL
2qt+ZkyA+2jusWRzhLOmvxS4SIplu9QOFwJAZjNRYtdWM9qCyJKfjiZA38ZE4F+q
ur5Zu9HrWNpF8h+5AOROTK+uagJYl1ewxSKKre3sNYOZ89oxTIob6F0J+wJBAJmo
1QIczUrTa4upLVARJQFteW7+xN8jFP99uExI9D3PH86w8/YwbEIm7ON49uW2qZWL
o9u5HL9IIL9MpG/T8K8CQBqxYP3fBijSzVHJW2ZTNvnB4aigCbcWy+8CJd+s/lpQ
DwWtiMY2gOKZIlTQfaGaqqPcPN9LcqNQHie/2rlopbs=
-----END RSA PRIVATE KEY-----
";

/// The same key as PKCS#8.
const RSA_1024_PKCS8: &str = "\
-----BEGIN PRIVATE KEY-----
MIICdgIBADANBgkqhkiG9w0BAQEFAASCAmAwggJcAgEAAoGBANa0p97tSZhLqa2/
Ff1XqfkJUMy/mcuc4GPqqfAz2/X5WUUASXT/ooM9hZzc+PtG70o4xnMKfSH/syqN
+N070PZK4U7bF6IU+CBTwlPrH8LfyRoN6rDOzoiIVPsPnFRU/H0JnTlYzqp1RnEs
zN6bY9XTjWL2HzwCmFVPVell0btNAgMBAAECgYA8R7xZ+oUPHS8meN/ToSk3okXt
Nl4XrJPTea78oZLAHKHTnaECGEOoVT2OLPw6kE/eptIQuoEnaoMDD5kvg/vGpo5u
Tz051amHhL0sd4xOx3SJJ2Pfpy5Is+I6ykLeb/eFiF9iovlGifyTsHohw9FX7nyF
DHgOw3fy4lV8eazAgQJBAPqpNNtmYJ73VfT1JYPVzFeiTyQTYd5YM9T/3hLGK5hR
HoAkUkli5AMwIOV5bwRVV1ShUUQMX3RlBxFdHfGK5DsCQQDbR2TT5o44hCs6rHDl
1MhmRNYZvkc3gMuLHF3QyuhdFl4X35g5VAvaq35mTID7aO6xZHOEs6a/FLhIimW7
1A4XAkBmM1Fi11Yz2oLIkp+OJkDfxkTgX6q6vlm70etY2kXyH7kA5E5Mr65qAliX
V7DFIoqt7ew1g5nz2jFMihvoXQn7AkEAmajVAhzNStNri6ktUBElAW15bv7E3yMU
/324TEj0Pc8fzrDz9jBsQibs43j25baplYuj27kcv0ggv0ykb9PwrwJAGrFg/d8G
KNLNUclbZlM2+cHhqKAJtxbL7wIl36z+WlAPBa2IxjaA4pkiVNB9oZqqo9w830ty
o1AeJ7/auWiluw==
-----END PRIVATE KEY-----
";

/// RSA 4096-bit, PKCS#1.
const RSA_4096_PKCS1: &str = "\
-----BEGIN RSA PRIVATE KEY-----
MIIJKAIBAAKCAgEA33BKEZ82jeu4csz6sZ4jxUY8JEtNH4kgG3I4sVy9TEA+vwBT
AShM8Sh200o37XhUSDi1ozPgN1yvNRXXGMCAr1Glwici/mpiBSGAut7NORT/Qwa6
uoTPZiBg1GJXXDYIpy3gRq7wr4VL1KTLS3B2kdH+aENjiK1LOHMasCVOdVZWkXvY
QNCngVcET98UGf+t5oQwtg4cQnKtOc1V9TH7827WJ/aYOZO6v5H5GhDw/SV395c+
tWrgOKZsR2e7dKNNbYFvXjWq/aTOihUUBblGcv8zouR9u+9m0OZJKUM3QNYMNK4z
4pSSiFbOS/EX7bqkBpAoc9MO6vmXrwhropjsn+8b1UglvtirZnSjUumovfBtuked
j6tFR6SkJ9CN+gCXSCLpjHiCHZIA1vnb/tQ4+EC6lgv9GOEq/KchU9wjmQ7bbJjQ
g/BPd+rGIW+RPFsSmwONOsbfmDoY9zszTUmUls3/DaNjxG9Rp9UxVVnOR/A98j5P
QW6n9oPK5WkYshnthHDxhodOot3im4HzsD2kwrU0DfENohZO/056CWYKb+6W1yWE
ofQm2X4E3dZQMlAQFTm5L1iGM8eZkcb4RmWX7LZi8mVB7EJjRP5OQ1QXGpVXjdLa
u6HAoGaR9p4XnQaCLTIbVc++wLHjNjkWGI3wu5NrOf10UGFvJM/qgL6kR8kCAwEA
AQKCAgAE8myBZWAE1mI4EHfAdPrfxEVSnGQxvYx7bxT4QFBknsuE2RH9ZZIGiNnQ
pcUFOfPLwY2r9lsRfrjWWQxxHNn8h7c+zDUHIv3WlT5PZN1wVRmttzltJcGdxju+
mArNHNkmMmrTxc3IZRAfviJOIkhNxDN4xX0vqn6O2mWN3tWU3Xt/LxnDnZsHzxBm
YE8GoFWOVADsFvXjNrzFGdm8WwX0BtExA1GtfKrW0PmN7TAYurqkPbICvEIInw6o
qhBJbdAqC4KWuGN3yC1We079LXP02def1KVAAvXozCB0jGttwQ92HyFA8/8mi513
qvfXqJk3F/v9TH/5Ddug4XPYnsAmY8I/sKDZZZS+6lj+K1JNBwzDDRyMw2bVyeAA
gTbZff+R3BM/vS+tdhVUAEpvpX7fFlR/5dNiTHFcaPno4gkISIcnnVU5dSM5vVBW
LL1XpV/GTFp7oKGAfQDQmXnNbJbXyPmTMdBgIyxTi3VgXzW4pOv4VNzo8NmfN4Hy
BCAdpzwflJl8dzq5KGNYJsCH2WZ8B5lhLDyhUU+UkyVyuhw48aHN7TVE2xwtJpTA
jshAV34gidsY7inyZO/Kh3/PLBtbKCX0V3QpninF80c+XvvSfW9XnQDynH5GWCCX
p/gnL3r3KctjrRwGna6ckiPNeBRJaUSu7DI5OVqtwX0u4aFP8QKCAQEA85SePJYK
HumUL9aw/Vrr8EBT94Ip1youI+4oRgCnVLjB6rmUlSYIUGlgRRxUKEY9sLEBi6Lk
DSUkl2tz7fJ+i26eus3wqL4GPn3sfZCD9CuwGjBJcbz1XH1JLjv731pfV6+0n0Ky
uHfe6ORM6mvaR+KGGBzS5R1FeJTOGT8oGIf0n7+8Eo+JuX8dj8IOvovzVxib/Fje
1bzi5urBwTiqh92iJuekf0JPO6WWn3f8HbwwtkF0ex++YYQr8+bwFcgo/bcpBHO2
oDG0iOT5F56XZAjmtKxl5Jh4Y9BqXf+BU7F+WcN9yLCF0skk/Jq8lbQhYTEkLrUW
613ZzAa4vhjoBQKCAQEA6tTD26dX2PXH18ghbTEAKdobWjviCzkPJQEXJQrRBalE
eUVZYI0xWcy7DT1Lw6zCd2j9ESbX4VCtIR7gHdfGFLnhAxa5rWyXgqGSFkGUG33/
4lgutcvPxCYSNi4Ha/HQdYpsAH//RMuLNeLaG2Mo6bRMa9giXKEWHYgJ5AcY2hec
vtWBo/8S8ov5yG+gzYymEXbgSta3Q/DfwsUdBpIR/2E/DIRHUF2zljGO7U6TC0EC
VU6o0qjfzn9ZmX3mSyGU4OChFH+vfUAwHmWllj1TKIPtGX6tsx7VjAeg+FIgWbD9
C8NiFZNOgbrtSdMdLnGfCc7IMxwhAw1kZDs5p/E/9QKCAQEA1lo+GiELjQKO1r5/
CKYfpVBm1BQmz+OdsR7fMCNZHdRtSivAVrSecm0ZPBhe8wZFOZ27N2/EctDx75Ku
9YIF3JwfcVLT6xs2kX3tRN6NUK21joZZy462+YqDgP1mfLqh1p+YOuLONkm+z4JB
MbZx4/qzeLq82MU2opOI/2y100ipfH+VeVv5nlT/5cenhAXSwh20/5ARoVRU9VM3
6Nr+LwxaqxQEjb0DzwC8mV9UbbJzx5+4arWXq2dN6pibRP/dGtE5dmKCH10+e43M
qv10SqMOq4ZfMJkAsQ3y3P+Bhu5Wu5WutpKpYcKDGwzs0m0vRsGhDr1sCvqPNN3h
a+CtJQKCAQA0On4VLHLtXjzEUU6d6ngO1uOefhMYS+iCYmuzYWR7zdnc3v+x6bVA
M7imiSuAqbvWsxMV7X22LytSYnuWJ5d2pKDW/wbs+2n3M9g5+vvl4XA390TsShg7
l/wU8MfVykKC4faDZfRwaJTdt0arMLK4x9D3a2q5D1rL1qXcgXeVigriprner6yX
JWq4mZs6HD4TRE0+V+MKyVf7Cbwa6gH2uro7HnB9/1kh3oPbY85wglTyhDwoHkco
tkpHSSkfLKjgGxW4aW2ufcg1+oWJlLoaGL1zHimj3QfBzTCQCjQHvsWJCDuYcNrV
H64G7V1gJwUoOUVtmKP++cuKP2HjaFTBAoIBAEgnx8kloAPG7BLdRxQVxLzIRmgL
K9+kqiP+Wqf0GBPr8gkZW60HWTl8TJvrKCeC8UeXQTVZa9zmB4lWv/fLif+ATKb9
UoLLFbY6H7W+aW+75GLTEtGEr8uZhUY7ujVWhgzU3DrI+PPQNUDtq0TnsTIu57iu
u+vSYurNJ/FZVXAL0pm0yOmUMBJ1q5frlEgjc1vc17QZMa3DTVm4RebfcbbzVboT
OrXFAIyUonJpP1k1pC1tFM+dTWjH/C4403XZmHKLLp/iDNVu1fjoer+fsvrdQnT0
0AirsYURCaVkomVjD3KSlOXCSa3+PuWzVfhoLvAjQzdEMSJGIh4vWGm9b94=
-----END RSA PRIVATE KEY-----
";

/// A P-256 key in an encrypted PKCS#8 envelope (passphrase `secret`).
const ENCRYPTED_PKCS8: &str = "\
-----BEGIN ENCRYPTED PRIVATE KEY-----
MIHsMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAjxELdZyN1XbwICCAAw
DAYIKoZIhvcNAgkFADAdBglghkgBZQMEASoEEOyB0nBePlbWGDZkLSZkpAsEgZAg
wXVm8lJQBjpiVeCx5htghFMaRk8m8f/FMSCkzCQqaVV9jTpkdNQYBtWO7Yk48ivt
aG3GfDWU95h6iCVfYGX3tO6YDpUQFGlf9aFzdTvYFlFroFVTSt3aemQAJyWQQ64l
0/fVvYsDHlyh20BraZxt9196yK6T00WAcfKL+xxLbGZjofFZifIJz4LYwg5QqpY=
-----END ENCRYPTED PRIVATE KEY-----
";

/// The same key with OpenSSL's legacy PEM encryption (`Proc-Type: 4,ENCRYPTED`).
const ENCRYPTED_SEC1_LEGACY: &str = "\
-----BEGIN EC PRIVATE KEY-----
Proc-Type: 4,ENCRYPTED
DEK-Info: AES-128-CBC,0E2A3BE1999E8FE7CDAFDE2C3985BB7A

8svJaIpl/T/jsyQHHmQqA42/YiYR9bRmb/v4ogwAYtLJuswpwolqemAEIitcdarw
S6JoDBtCK/t/JCeAkhDk2XXoqWHgBrOPf/kWuiXpeMnIuMXEsY2zvqJd7QdeBblx
OdMmf6GjLBK/0JoGFVzTuJpGrKrSNSxj65ezlEvo8fE=
-----END EC PRIVATE KEY-----
";

/// A self-signed certificate for that key.
const CERTIFICATE: &str = "\
-----BEGIN CERTIFICATE-----
MIIBcjCCARmgAwIBAgIUerwIxOVPl7H2+VS27UCa4FX1zMYwCgYIKoZIzj0EAwIw
DzENMAsGA1UEAwwEdGVzdDAeFw0yNjExMjYxMTMwNTVaFw0yNjExMjcxMTMwNTVa
MA8xDTALBgNVBAMMBHRlc3QwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQbDTYm
x0tjAy62NBi/eVsK6NnaIkaqAAmweMMhDJU+z1ZqKJCv/cAOxUy6R9IujUp8C2q+
R0cGLFZG6xgdUz0so1MwUTAdBgNVHQ4EFgQUsaDkeQrLriWO+gF09rxVeCoOtA4w
HwYDVR0jBBgwFoAUsaDkeQrLriWO+gF09rxVeCoOtA4wDwYDVR0TAQH/BAUwAwEB
/zAKBggqhkjOPQQDAgNHADBEAiAGur1XpTIlHGBNyQaWpPBXjmHFz10y2Huoftda
J7fddgIgeoO3yp4th/3j32j5Xy+BHq+LbbNUm5aQVtBFBN7TtvU=
-----END CERTIFICATE-----
";

/// An EC key on secp256k1 (SEC1), a curve px-device-identity does not use.
const SECP256K1_SEC1: &str = "\
-----BEGIN EC PRIVATE KEY-----
MHQCAQEEILQEbdTYNBvJy/rDYPvWAL4Qq886EJ4qBOvWsYn9DwhNoAcGBSuBBAAK
oUQDQgAEmuSryOG6MRxDnIvlUzRrx+7lIxet1GGZ6I0NBhE+N0mbgNcNwgno4pMJ
3ETu3Tcpod+rOSdab4fADo2CVm0QEg==
-----END EC PRIVATE KEY-----
";

/// An Ed25519 key (PKCS#8).
const ED25519_PKCS8: &str = "\
-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIBalCN+byhrePd4sZvaWtHdQwY+7GkI4VI3PFGh8MPiT
-----END PRIVATE KEY-----
";

const DEVICE_YML: &str = "\
id: 8b477978-c63d-46f5-9492-67fafdd0d68e
client_id: d5fe8500-6003-49fd-9b8f-7adaf102e9a3
host: https://idp-server.ones-now.com
key_type: ECC:p256
key_security: default
is_managed: true
";

/// A temp dir with a valid identity: `device.yml` (ECC:p256) and a P-256
/// `private.pem` (mode 0600).
fn identity() -> (tempfile::TempDir, IdentityPaths) {
    let dir = tempfile::tempdir().unwrap();
    let paths = IdentityPaths::new(dir.path().join("device.yml"), dir.path());
    std::fs::write(&paths.config, DEVICE_YML).unwrap();
    write_key(
        &paths,
        PemSigner::generate(KeyType::EccP256)
            .unwrap()
            .private_key_pem()
            .unwrap()
            .as_bytes(),
    );
    (dir, paths)
}

fn write_key(paths: &IdentityPaths, pem: &[u8]) {
    let path = paths.private_key();
    let _ = std::fs::remove_file(&path);
    std::fs::write(&path, pem).unwrap();
    set_mode(&path, 0o600);
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) {}

/// `device.yml` with `text`, loaded through `load_device_config`.
fn load_yaml(text: impl AsRef<[u8]>) -> (Result<DeviceConfig, ConfigError>, PathBuf) {
    let (dir, paths) = identity();
    std::fs::write(&paths.config, text).unwrap();
    let result = load_device_config(&paths.config);
    // Keep the path for messages; the dir goes with `dir`.
    let path = paths.config.clone();
    drop(dir);
    (result, path)
}

/// The identity with `pem` as its private key, through `DeviceIdentity::load`.
fn load_key(pem: &str, key_type: KeyType) -> (KeyError, PathBuf) {
    let (_dir, paths) = identity();
    let yaml = DEVICE_YML.replace("ECC:p256", key_type.as_str());
    std::fs::write(&paths.config, yaml).unwrap();
    write_key(&paths, pem.as_bytes());
    match DeviceIdentity::load(&paths) {
        Err(Error::Key(e)) => (e, paths.private_key()),
        Err(other) => panic!("expected a key error, got {other}"),
        Ok(_) => panic!("a hostile key loaded"),
    }
}

#[track_caller]
fn assert_invalid_key(err: &KeyError, path: &Path, needle: &str) {
    match err {
        KeyError::Invalid { path: p, reason } => {
            assert_eq!(p, path);
            assert!(reason.contains(needle), "{reason:?} lacks {needle:?}");
        }
        other => panic!("expected KeyError::Invalid ({needle}), got {other}"),
    }
    assert!(err.to_string().contains(&path.display().to_string()));
}

#[track_caller]
fn assert_names_file(err: &ConfigError, path: &Path) {
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

/// The `io::ErrorKind` of a read error.
fn read_error_kind(err: &ConfigError) -> std::io::ErrorKind {
    match err {
        ConfigError::Read { source, .. } => source.kind(),
        other => panic!("expected ConfigError::Read, got {other}"),
    }
}

#[test]
fn empty_blank_or_comment_only_device_yml_is_not_a_mapping() {
    for text in ["", "\n\n\n", "# nothing here\n", "~\n", "---\n...\n"] {
        let (result, path) = load_yaml(text);
        let err = result.unwrap_err();
        assert!(
            matches!(err, ConfigError::NotAMapping { .. }),
            "{text:?}: {err}"
        );
        assert_names_file(&err, &path);
    }
}

#[test]
fn binary_device_yml_is_an_error_naming_the_file() {
    // Not UTF-8: a read error saying so.
    let junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    for bytes in [
        junk.as_slice(),
        b"\x1f\x8b\x08\x00\xff\xfe",
        b"id: \xff\xfe\n",
    ] {
        let (result, path) = load_yaml(bytes);
        let err = result.unwrap_err();
        assert_eq!(
            read_error_kind(&err),
            std::io::ErrorKind::InvalidData,
            "{err}"
        );
        assert!(err.to_string().contains("not UTF-8"), "{err}");
        assert_names_file(&err, &path);
    }
    // UTF-8, but control characters YAML does not allow.
    for text in [
        "\0\0\0\0",
        "id: a\u{1}b\nkey_type: ECC:p256\n",
        "\u{7f}\u{8}\u{1b}[2J",
    ] {
        let (result, path) = load_yaml(text);
        let err = result.unwrap_err();
        assert!(matches!(err, ConfigError::Yaml { .. }), "{text:?}: {err}");
        assert_names_file(&err, &path);
    }
}

#[test]
fn a_huge_device_yml_is_refused_without_being_read() {
    let (_dir, paths) = identity();
    // 50 MiB (sparse: nothing is written, but the size is real).
    let file = std::fs::File::create(&paths.config).unwrap();
    file.set_len(50 * 1024 * 1024).unwrap();
    drop(file);
    let began = Instant::now();
    let err = load_device_config(&paths.config).unwrap_err();
    assert!(began.elapsed() < Duration::from_secs(2), "refused at once");
    assert_eq!(
        read_error_kind(&err),
        std::io::ErrorKind::FileTooLarge,
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("52428800 bytes") && message.contains("1024 KiB"),
        "{message}"
    );
    assert_names_file(&err, &paths.config);
    // The same through DeviceIdentity::load.
    let err = DeviceIdentity::load(&paths).unwrap_err();
    assert!(
        matches!(err, Error::Config(ConfigError::Read { .. })),
        "{err}"
    );

    // One byte over the limit is refused; a long but legal file loads.
    let mut text = DEVICE_YML.to_string();
    let padding = MAX_IDENTITY_FILE_BYTES as usize - text.len() - 1;
    text.push('#');
    text.push_str(&"x".repeat(padding));
    assert_eq!(text.len() as u64, MAX_IDENTITY_FILE_BYTES);
    std::fs::write(&paths.config, &text).unwrap();
    load_device_config(&paths.config).unwrap();
    text.push('x');
    std::fs::write(&paths.config, &text).unwrap();
    let err = load_device_config(&paths.config).unwrap_err();
    assert_eq!(
        read_error_kind(&err),
        std::io::ErrorKind::FileTooLarge,
        "{err}"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn an_endless_file_is_refused_after_the_limit() {
    // A file with no size that never ends: reading stops one byte past the limit.
    let (_dir, paths) = identity();
    std::fs::remove_file(&paths.config).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &paths.config).unwrap();
    let err = load_device_config(&paths.config).unwrap_err();
    assert_eq!(
        read_error_kind(&err),
        std::io::ErrorKind::FileTooLarge,
        "{err}"
    );
    assert_names_file(&err, &paths.config);

    std::fs::remove_file(&paths.config).unwrap();
    std::fs::write(&paths.config, DEVICE_YML).unwrap();
    std::fs::remove_file(paths.private_key()).unwrap();
    std::os::unix::fs::symlink("/dev/zero", paths.private_key()).unwrap();
    match DeviceIdentity::load(&paths).unwrap_err() {
        Error::Key(KeyError::Read { source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::FileTooLarge);
        }
        other => panic!("{other}"),
    }
}

#[test]
fn yaml_bombs_and_deep_nesting_are_refused_quickly() {
    let laughs = "\
a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
id: x
key_type: ECC:p256
key_security: default
";
    // libyaml's scanner is quadratic in flow depth: 100 000 `[` took over
    // three minutes before the depth check.
    let deep = format!("id: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    let deep_maps = format!(
        "{DEVICE_YML}x: {}1{}\n",
        "{a: ".repeat(100_000),
        "}".repeat(100_000)
    );
    for (what, text) in [
        ("billion laughs", laughs.to_string()),
        ("deep nesting", deep),
        ("deep maps", deep_maps),
    ] {
        let began = Instant::now();
        let (result, path) = load_yaml(&text);
        let err = result.unwrap_err();
        assert!(matches!(err, ConfigError::Yaml { .. }), "{what}: {err}");
        assert_names_file(&err, &path);
        assert!(
            began.elapsed() < Duration::from_secs(2),
            "{what}: {:?}",
            began.elapsed()
        );
    }

    // The limit: 64 levels parse (and are then the wrong type), 65 do not.
    let nested = |n: usize| format!("{DEVICE_YML}title: {}{}\n", "[".repeat(n), "]".repeat(n));
    let (result, _) = load_yaml(nested(onesoidc_core::yaml::MAX_FLOW_DEPTH));
    assert!(matches!(
        result.unwrap_err(),
        ConfigError::InvalidField { field: "title", .. }
    ));
    let (result, _) = load_yaml(nested(onesoidc_core::yaml::MAX_FLOW_DEPTH + 1));
    match result.unwrap_err() {
        ConfigError::Yaml { source, .. } => {
            assert!(source.message.contains("nest more than 64"), "{source}");
            assert_eq!(source.line, Some(7), "the line of the 65th `[`");
        }
        other => panic!("{other}"),
    }
}

#[test]
fn wrong_yaml_types_are_named_by_field() {
    let (result, _) = load_yaml("- id: x\n- key_type: ECC:p256\n");
    assert!(matches!(
        result.unwrap_err(),
        ConfigError::NotAMapping { .. }
    ));
    let (result, _) = load_yaml("just words\n");
    assert!(matches!(
        result.unwrap_err(),
        ConfigError::NotAMapping { .. }
    ));

    for (line, field) in [
        ("key_type: 2048", "key_type"),
        ("key_type: [ECC, p256]", "key_type"),
        ("key_security: true", "key_security"),
        ("is_managed: 1", "is_managed"),
        ("is_managed: [true]", "is_managed"),
        ("client_id: {a: 1}", "client_id"),
        ("host: [https://idp-server.ones-now.com]", "host"),
        ("host: 12", "host"),
        ("id: {nested: map}", "id"),
        ("title: [a, b]", "title"),
    ] {
        let name = line.split(':').next().unwrap();
        let text: String = DEVICE_YML
            .lines()
            .filter(|l| !l.starts_with(&format!("{name}:")))
            .map(|l| format!("{l}\n"))
            .chain([format!("{line}\n")])
            .collect();
        let (result, path) = load_yaml(&text);
        let err = result.unwrap_err();
        assert!(
            matches!(&err, ConfigError::InvalidField { field: f, .. } if *f == field),
            "{line}: {err}"
        );
        assert!(err.to_string().contains(field));
        assert_names_file(&err, &path);
    }

    // A field given twice: the last one counts, as in PyYAML, which
    // px-device-identity reads device.yml with.
    let (result, _) = load_yaml(format!("{DEVICE_YML}id: twice\n"));
    assert_eq!(result.unwrap().id, "twice");

    // A numeric key is an unknown field like any other, kept as text.
    let (result, _) = load_yaml(format!("{DEVICE_YML}1: numeric key\n"));
    assert_eq!(result.unwrap().extra["1"], "numeric key");

    // A key YAML allows but a device.yml cannot have.
    let (result, path) = load_yaml(format!("{DEVICE_YML}? [complex, key]\n: value\n"));
    let err = result.unwrap_err();
    assert!(matches!(err, ConfigError::Yaml { .. }), "{err}");
    assert_names_file(&err, &path);
}

#[cfg(unix)]
#[test]
fn a_symlinked_device_yml_is_followed() {
    // Decision: device.yml may be a symlink (e.g. into a config management
    // tree); it is followed like any file, and errors name the link.
    let (dir, paths) = identity();
    let real = dir.path().join("real-device.yml");
    std::fs::rename(&paths.config, &real).unwrap();
    std::os::unix::fs::symlink(&real, &paths.config).unwrap();
    let identity = DeviceIdentity::load(&paths).unwrap();
    assert_eq!(identity.config.id, "8b477978-c63d-46f5-9492-67fafdd0d68e");
    assert_eq!(identity.config.path, paths.config);
    // And so is a symlinked private key.
    let key = dir.path().join("real-private.pem");
    std::fs::rename(paths.private_key(), &key).unwrap();
    std::os::unix::fs::symlink(&key, paths.private_key()).unwrap();
    DeviceIdentity::load(&paths).unwrap();
}

#[cfg(unix)]
#[test]
fn symlink_loops_and_dangling_symlinks_are_read_errors() {
    let (dir, paths) = identity();
    let other = dir.path().join("loop.yml");
    std::fs::remove_file(&paths.config).unwrap();
    std::os::unix::fs::symlink(&other, &paths.config).unwrap();
    std::os::unix::fs::symlink(&paths.config, &other).unwrap();
    let err = load_device_config(&paths.config).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err}");
    assert_names_file(&err, &paths.config);

    std::fs::remove_file(&paths.config).unwrap();
    std::os::unix::fs::symlink(dir.path().join("gone.yml"), &paths.config).unwrap();
    let err = load_device_config(&paths.config).unwrap_err();
    assert_eq!(read_error_kind(&err), std::io::ErrorKind::NotFound);

    // The same for the key.
    std::fs::remove_file(&paths.config).unwrap();
    std::fs::write(&paths.config, DEVICE_YML).unwrap();
    let key_loop = dir.path().join("key-loop.pem");
    std::fs::remove_file(paths.private_key()).unwrap();
    std::os::unix::fs::symlink(&key_loop, paths.private_key()).unwrap();
    std::os::unix::fs::symlink(paths.private_key(), &key_loop).unwrap();
    let err = DeviceIdentity::load(&paths).unwrap_err();
    assert!(matches!(err, Error::Key(KeyError::Read { .. })), "{err}");
    assert!(err.to_string().contains("private.pem"), "{err}");
}

#[test]
fn a_device_yml_that_cannot_be_read_is_a_read_error() {
    // Root reads files of mode 0000, and these tests may run as root: a
    // directory is what cannot be read as a file by anyone.
    let (_dir, paths) = identity();
    std::fs::remove_file(&paths.config).unwrap();
    std::fs::create_dir(&paths.config).unwrap();
    let err = load_device_config(&paths.config).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err}");
    assert_names_file(&err, &paths.config);
    assert!(
        err.to_string().contains("onesoidc register"),
        "says what to do: {err}"
    );
}

/// Captures what `tracing` logs at WARN and above while `f` runs on this thread.
fn warnings_during<T>(f: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    (out, text)
}

#[cfg(unix)]
#[test]
fn a_private_key_readable_by_others_loads_with_a_warning() {
    let (_dir, paths) = identity();
    for (mode, warns) in [
        (0o600, false),
        (0o400, false),
        (0o640, true),
        (0o604, true),
        (0o644, true),
        (0o666, true),
    ] {
        set_mode(&paths.private_key(), mode);
        let (result, logged) = warnings_during(|| DeviceIdentity::load(&paths));
        result.unwrap_or_else(|e| panic!("mode {mode:o}: {e}"));
        if warns {
            assert!(logged.contains("WARN"), "mode {mode:o}: {logged:?}");
            assert!(logged.contains("readable by other users"), "{logged}");
            assert!(
                logged.contains(&paths.private_key().display().to_string()),
                "{logged}"
            );
            assert!(
                logged.contains(&format!("{mode:o}")),
                "names the mode: {logged}"
            );
            assert!(!logged.contains("PRIVATE KEY"), "never the key: {logged}");
        } else {
            assert!(logged.is_empty(), "mode {mode:o}: {logged}");
        }
    }
}

#[test]
fn a_key_of_another_type_than_key_type_is_a_mismatch() {
    let p384 = PemSigner::generate(KeyType::EccP384)
        .unwrap()
        .private_key_pem()
        .unwrap();
    for (pem, key_type, found) in [
        (p384.as_str(), KeyType::EccP256, "ECC:p384"),
        (p384.as_str(), KeyType::Rsa3072, "ECC:p384"),
        (
            &*PemSigner::generate(KeyType::EccP256)
                .unwrap()
                .private_key_pem()
                .unwrap(),
            KeyType::EccP521,
            "ECC:p256",
        ),
    ] {
        let (err, path) = load_key(pem, key_type);
        match &err {
            KeyError::Mismatch {
                path: p,
                expected,
                found: f,
            } => {
                assert_eq!(p, &path);
                assert_eq!(*expected, key_type);
                assert_eq!(f, found);
            }
            other => panic!("{other}"),
        }
    }
}

#[test]
fn rsa_keys_of_sizes_px_does_not_use_are_refused_by_size() {
    for (pem, bits) in [
        (RSA_1024_PKCS1, "1024"),
        (RSA_1024_PKCS8, "1024"),
        (RSA_4096_PKCS1, "4096"),
    ] {
        let (err, path) = load_key(pem, KeyType::Rsa2048);
        assert_invalid_key(&err, &path, &format!("{bits} bits"));
        assert!(err.to_string().contains("RSA:2048 or RSA:3072"), "{err}");
    }
}

#[test]
fn encrypted_keys_are_refused_as_encrypted() {
    for pem in [ENCRYPTED_PKCS8, ENCRYPTED_SEC1_LEGACY] {
        let (err, path) = load_key(pem, KeyType::EccP256);
        assert_invalid_key(&err, &path, "encrypted");
    }
}

#[test]
fn a_certificate_or_public_key_is_not_a_private_key() {
    let public = PemSigner::generate(KeyType::EccP256)
        .unwrap()
        .public_key_pem()
        .unwrap();
    for (pem, tag) in [
        (CERTIFICATE, "CERTIFICATE"),
        (public.as_str(), "PUBLIC KEY"),
    ] {
        let (err, path) = load_key(pem, KeyType::EccP256);
        assert_invalid_key(&err, &path, &format!("`{tag}` is not a private key"));
    }
}

#[test]
fn keys_on_other_curves_or_algorithms_are_refused() {
    let (err, path) = load_key(SECP256K1_SEC1, KeyType::EccP256);
    assert_invalid_key(&err, &path, "not on P-256, P-384 or P-521");
    let (err, path) = load_key(ED25519_PKCS8, KeyType::EccP256);
    assert_invalid_key(&err, &path, "neither RSA nor EC");
}

#[test]
fn truncated_or_corrupted_pem_is_invalid() {
    let good = PemSigner::generate(KeyType::EccP256)
        .unwrap()
        .private_key_pem()
        .unwrap();
    let lines: Vec<&str> = good.lines().collect();
    let cases = [
        // Cut in the middle: no END line.
        lines[..lines.len() / 2].join("\n"),
        // The END line of another type.
        good.replace("END PRIVATE KEY", "END RSA PRIVATE KEY"),
        // Base64 that is not base64.
        good.replacen(&lines[1][..8], "!!!!????", 1),
        // Valid PEM around DER that is not a key.
        "-----BEGIN PRIVATE KEY-----\nAAAAAAAA\n-----END PRIVATE KEY-----\n".to_string(),
        "-----BEGIN EC PRIVATE KEY-----\nMAA=\n-----END EC PRIVATE KEY-----\n".to_string(),
        "-----BEGIN RSA PRIVATE KEY-----\nMAA=\n-----END RSA PRIVATE KEY-----\n".to_string(),
    ];
    for pem in cases {
        let (err, path) = load_key(&pem, KeyType::EccP256);
        assert!(matches!(err, KeyError::Invalid { .. }), "{pem:?}: {err}");
        assert!(err.to_string().contains(&path.display().to_string()));
    }
}

#[test]
fn a_huge_private_key_file_is_refused_without_being_read() {
    let (_dir, paths) = identity();
    let file = std::fs::File::options()
        .write(true)
        .truncate(true)
        .open(paths.private_key())
        .unwrap();
    file.set_len(50 * 1024 * 1024).unwrap();
    drop(file);
    let began = Instant::now();
    let err = DeviceIdentity::load(&paths).unwrap_err();
    assert!(began.elapsed() < Duration::from_secs(2));
    match &err {
        Error::Key(KeyError::Read { path, source }) => {
            assert_eq!(path, &paths.private_key());
            assert_eq!(source.kind(), std::io::ErrorKind::FileTooLarge);
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("private.pem"), "{err}");

    // A PEM header around megabytes of base64 is refused the same way.
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    while pem.len() as u64 <= MAX_IDENTITY_FILE_BYTES {
        pem.push_str("QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB\n");
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    write_key(&paths, pem.as_bytes());
    let err = DeviceIdentity::load(&paths).unwrap_err();
    assert!(matches!(err, Error::Key(KeyError::Read { .. })), "{err}");
}

#[test]
fn a_tpm_identity_with_a_junk_public_jwk_is_invalid() {
    let (_dir, paths) = identity();
    std::fs::write(
        &paths.config,
        DEVICE_YML.replace("key_security: default", "key_security: tpm"),
    )
    .unwrap();
    for junk in [&b"\x00\xff\xfe binary"[..], b"{\"kty\": 5}", b"[]"] {
        std::fs::write(paths.public_jwk(), junk).unwrap();
        let err = DeviceIdentity::load(&paths).unwrap_err();
        assert!(matches!(err, Error::Key(KeyError::Invalid { .. })), "{err}");
        assert!(err.to_string().contains("public_jwk.json"), "{err}");
    }
    let file = std::fs::File::create(paths.public_jwk()).unwrap();
    file.set_len(50 * 1024 * 1024).unwrap();
    let err = DeviceIdentity::load(&paths).unwrap_err();
    assert!(matches!(err, Error::Key(KeyError::Read { .. })), "{err}");
}
