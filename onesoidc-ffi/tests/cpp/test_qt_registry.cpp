// The Qt layer when a login's token manager goes away before the login
// ends: LoginSignals::setTokenManager holds the manager through a QPointer,
// so the tokens are not stored in a deleted manager. Before, the
// successful login called storeTokens on freed memory (AddressSanitizer:
// heap-use-after-free). `cargo xtask test` runs it under ASan+UBSan
// against `onesoidc dev-idp`:
//
//   test_qt_registry removed     registry.remove("ciba_user") while the login runs
//   test_qt_registry destroyed   the whole registry destroyed while the login runs
//
// The identity comes from ONESOIDC_DEVICE_CONFIG and ONESOIDC_KEY_DIR.
// Prints "VARIANT: finished 0, authenticated alice" and exits 0 when the
// login ended well.
#include <QCoreApplication>
#include <QTimer>

#include <cstdio>
#include <memory>
#include <string>

#include <onesoidc_qt.hpp>

int main(int argc, char **argv) {
    QCoreApplication app(argc, argv);
    const QString variant = argc == 2 ? QString::fromLocal8Bit(argv[1]) : QString();
    if (variant != QStringLiteral("removed") && variant != QStringLiteral("destroyed")) {
        std::fprintf(stderr, "usage: %s removed|destroyed\n", argv[0]);
        return 2;
    }
    try {
        onesoidc::Client client;
        auto registry = std::make_unique<onesoidc::TokenManagerRegistry>();
        onesoidc::TokenManager *manager =
            registry->create(client, QStringLiteral("ciba_user"), onesoidc::Refresh::User);
        onesoidc::CibaAuthSignals login(client);
        login.setTokenManager(manager);
        int finished = -1;
        QString subject;
        QObject::connect(&login, &onesoidc::LoginSignals::authenticated,
                         [&](const QString &, const QString &who) { subject = who; });
        QObject::connect(&login, &onesoidc::LoginSignals::finished, [&](int status) {
            finished = status;
            QCoreApplication::quit();
        });
        QTimer::singleShot(60000, [] { QCoreApplication::exit(3); });
        login.cibaRequest(QStringLiteral("alice"));
        if (variant == QStringLiteral("removed")) {
            registry->remove(QStringLiteral("ciba_user"));
        } else {
            registry.reset();
        }
        const int loop = QCoreApplication::exec();
        std::printf("%s: finished %d, authenticated %s\n", argv[1], finished, subject.toLocal8Bit().constData());
        return loop == 0 && finished == ONESOIDC_OK && subject == QStringLiteral("alice") ? 0 : 1;
    } catch (const onesoidc::Error &failure) {
        std::fprintf(stderr, "%s: error %d: %s\n", argv[1], static_cast<int>(failure.status()), failure.what());
        return 1;
    }
}
