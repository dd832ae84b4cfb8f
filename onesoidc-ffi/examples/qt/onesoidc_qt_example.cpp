// onesoidc from Qt 6: the sections of the original library's guide, with
// its names (onesoidc_qt.hpp) and the C++ layer (onesoidc.hpp).
//
//   onesoidc_qt_example MODE
//
//   device-config  read device.yml (DeviceConfig::loadFromFile)
//   device-token   DeviceAuth::requestDeviceAccessToken
//   well-known     an application's URL, then a login for it (ApplicationsWellKnown)
//   ciba           CibaAuth::cibaRequest, then checkCibaStatus on a QTimer
//   ciba-events    CibaAuthSignals: started, waitingForAuthorization, authenticated, finished
//   qr             QRAuth: the code, the scan, then CIBA
//   qr-events      QRAuthSignals: qrSessionCreated, waitingForScan, scanned, ..., authenticated
//   token-manager  TokenManagerRegistry and TokenManager::tokensRefreshed
//
// The identity is px-device-identity's, or ONESOIDC_DEVICE_CONFIG and
// ONESOIDC_KEY_DIR; the person is "alice". Every slot checks that it runs
// on the main thread (the receiver's), never on a library thread.
#include <QCoreApplication>
#include <QThread>
#include <QTimer>

#include <cstdio>
#include <memory>
#include <string>

#include <onesoidc_qt.hpp>

namespace {

const QString kUser = QStringLiteral("alice");

void say(const QString &line) {
    std::printf("%s\n", line.toLocal8Bit().constData());
    std::fflush(stdout);
}

/// Reports a slot that runs anywhere but the receiver's (main) thread.
void onReceiverThread(const char *signal) {
    if (QThread::currentThread() != QCoreApplication::instance()->thread()) {
        say(QStringLiteral("ERROR: %1 was delivered on another thread than the receiver's")
                .arg(QString::fromLatin1(signal)));
        QCoreApplication::exit(70);
    }
}

/// Prints every signal of a CIBA or QR login and ends the event loop with
/// its status.
void traceLogin(onesoidc::LoginSignals *login) {
    QObject::connect(login, &onesoidc::LoginSignals::waitingForAuthorization, [](int remaining) {
        onReceiverThread("waitingForAuthorization");
        say(QStringLiteral("waitingForAuthorization: %1 s left").arg(remaining));
    });
    QObject::connect(login, &onesoidc::LoginSignals::authenticated,
                     [](const QString &token, const QString &subject) {
                         onReceiverThread("authenticated");
                         say(QStringLiteral("authenticated %1 (access token of %2 characters)")
                                 .arg(subject)
                                 .arg(token.size()));
                     });
    QObject::connect(login, &onesoidc::LoginSignals::error, [](const QString &message, int status) {
        say(QStringLiteral("error %1: %2").arg(status).arg(message));
    });
    QObject::connect(login, &onesoidc::LoginSignals::networkError,
                     [](const QString &) { say(QStringLiteral("networkError")); });
    QObject::connect(login, &onesoidc::LoginSignals::authenticationError,
                     [](const QString &) { say(QStringLiteral("authenticationError")); });
    QObject::connect(login, &onesoidc::LoginSignals::finished, [](int status) {
        onReceiverThread("finished");
        say(QStringLiteral("finished %1").arg(status));
        QCoreApplication::exit(status);
    });
}

int deviceConfig() {
    say(QStringLiteral("device id  %1").arg(onesoidc::toQString(onesoidc::deviceConfigField("id").value_or("?"))));
    say(QStringLiteral("issuer     %1").arg(onesoidc::toQString(onesoidc::deviceConfigField("issuer").value_or("?"))));
    say(QStringLiteral("key type   %1").arg(onesoidc::toQString(onesoidc::deviceConfigField("key_type").value_or("?"))));
    return 0;
}

int deviceToken(onesoidc::Client &client) {
    onesoidc::DeviceAuth auth(client);
    const QString token = auth.requestDeviceAccessToken();
    say(QStringLiteral("requestDeviceAccessToken: %1... (%2 characters)").arg(token.left(12)).arg(token.size()));
    return 0;
}

int wellKnown(onesoidc::Client &client) {
    for (const auto &app : client.applications()) {
        say(QStringLiteral("application %1 at %2").arg(onesoidc::toQString(app.clientIdentifier),
                                                       onesoidc::toQString(app.url)));
    }
    const std::string url = client.applicationUrl("vhh-server");
    onesoidc::Tokens tokens = client.cibaLogin(kUser.toStdString(), {"Log in to VHH", url});
    say(QStringLiteral("authenticated %1 for %2")
            .arg(onesoidc::toQString(tokens.subject().value_or("?")), onesoidc::toQString(url)));
    return 0;
}

int ciba(QCoreApplication &app, onesoidc::Client &client) {
    auto request = std::make_shared<onesoidc::CibaRequest>(client.cibaStart(kUser.toStdString(), {"Example login"}));
    say(QStringLiteral("cibaRequest: auth_req_id %1, %2 s to answer")
            .arg(onesoidc::toQString(request->authReqId()))
            .arg(request->expiresIn().count()));
    // checkCibaStatus on the event loop, every interval.
    QTimer timer;
    timer.setInterval(static_cast<int>(request->interval().count() * 1000));
    QObject::connect(&timer, &QTimer::timeout, [&] {
        try {
            std::optional<onesoidc::Tokens> tokens = client.cibaCheck(*request);
            if (!tokens) {
                say(QStringLiteral("checkCibaStatus: pending"));
                timer.setInterval(static_cast<int>(request->interval().count() * 1000));
                return;
            }
            say(QStringLiteral("checkCibaStatus: approved; authenticated %1")
                    .arg(onesoidc::toQString(tokens->subject().value_or("?"))));
            app.exit(0);
        } catch (const onesoidc::Error &failure) {
            say(QStringLiteral("checkCibaStatus: %1").arg(QString::fromUtf8(failure.what())));
            app.exit(failure.code());
        }
    });
    timer.start();
    return app.exec();
}

int cibaEvents(QCoreApplication &app, onesoidc::Client &client) {
    onesoidc::CibaAuthSignals login(client);
    QObject::connect(&login, &onesoidc::CibaAuthSignals::started, [](const QString &id, int expiresIn) {
        onReceiverThread("started");
        say(QStringLiteral("started: auth_req_id %1, %2 s to answer").arg(id).arg(expiresIn));
    });
    traceLogin(&login);
    login.cibaRequest(kUser, QStringLiteral("Example login"));
    return app.exec();
}

int qr(onesoidc::Client &client) {
    onesoidc::QrSession session = client.qrCreate();
    say(QStringLiteral("scan this code (%1):").arg(onesoidc::toQString(session.url())));
    say(onesoidc::QRAuthSignals::qrCode(onesoidc::toQString(session.url())));
    client.qrWaitForScan(session);
    say(QStringLiteral("scanned"));
    onesoidc::Tokens tokens = client.qrCibaLogin(session, {"Example QR login"});
    say(QStringLiteral("authenticated %1").arg(onesoidc::toQString(tokens.subject().value_or("?"))));
    return 0;
}

int qrEvents(QCoreApplication &app, onesoidc::Client &client) {
    onesoidc::QRAuthSignals login(client);
    QObject::connect(&login, &onesoidc::QRAuthSignals::qrSessionCreated,
                     [](const QString &url, const QString &id, int expiresIn) {
                         onReceiverThread("qrSessionCreated");
                         say(QStringLiteral("qrSessionCreated: session %1, %2 s to scan").arg(id).arg(expiresIn));
                         say(onesoidc::QRAuthSignals::qrCode(url, onesoidc::QrFormat::Ascii));
                     });
    QObject::connect(&login, &onesoidc::QRAuthSignals::waitingForScan,
                     [](int remaining) { say(QStringLiteral("waitingForScan: %1 s left").arg(remaining)); });
    QObject::connect(&login, &onesoidc::QRAuthSignals::scanned, [] { say(QStringLiteral("scanned")); });
    QObject::connect(&login, &onesoidc::QRAuthSignals::authorizationRequested,
                     [](const QString &, int expiresIn) {
                         say(QStringLiteral("authorizationRequested: %1 s to answer").arg(expiresIn));
                     });
    traceLogin(&login);
    login.start(QStringLiteral("Example QR login"));
    return app.exec();
}

int tokenManager(QCoreApplication &app, onesoidc::Client &client) {
    onesoidc::TokenManagerRegistry registry;
    onesoidc::TokenManager *device = registry.create(client, QStringLiteral("device"), onesoidc::Refresh::Device);
    QObject::connect(device, &onesoidc::TokenManager::tokensRefreshed, [&](int expiresIn) {
        onReceiverThread("tokensRefreshed");
        say(QStringLiteral("tokensRefreshed: %1 expires in %2 s").arg(device->name()).arg(expiresIn));
        say(QStringLiteral("managers: %1; %2: %3")
                .arg(registry.names().join(QStringLiteral(", ")), device->name(), device->state()));
        app.exit(0);
    });
    const QString token = device->accessToken();  // the first fetch: tokensRefreshed follows
    say(QStringLiteral("accessToken: %1...").arg(token.left(12)));
    return app.exec();
}

}  // namespace

int main(int argc, char **argv) {
    QCoreApplication app(argc, argv);
    const QString mode = argc > 1 ? QString::fromLocal8Bit(argv[1]) : QString();
    // Every run has a deadline.
    QTimer::singleShot(90 * 1000, &app, [] {
        say(QStringLiteral("timed out"));
        QCoreApplication::exit(124);
    });
    try {
        if (mode == QLatin1String("device-config")) {
            return deviceConfig();
        }
        onesoidc::Client client;  // the default identity, or the environment's
        if (mode == QLatin1String("device-token")) {
            return deviceToken(client);
        }
        if (mode == QLatin1String("well-known")) {
            return wellKnown(client);
        }
        if (mode == QLatin1String("ciba")) {
            return ciba(app, client);
        }
        if (mode == QLatin1String("ciba-events")) {
            return cibaEvents(app, client);
        }
        if (mode == QLatin1String("qr")) {
            return qr(client);
        }
        if (mode == QLatin1String("qr-events")) {
            return qrEvents(app, client);
        }
        if (mode == QLatin1String("token-manager")) {
            return tokenManager(app, client);
        }
        std::fprintf(stderr,
                     "usage: %s device-config | device-token | well-known | ciba | ciba-events | qr | "
                     "qr-events | token-manager\n",
                     argv[0]);
        return 2;
    } catch (const onesoidc::Error &failure) {
        std::fprintf(stderr, "error (status %d): %s\n", failure.code(), failure.what());
        return failure.code();
    }
}
