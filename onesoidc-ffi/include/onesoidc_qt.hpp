// onesoidc_qt.hpp: the Qt 6 layer, with the original C++/Qt library's
// names: DeviceAuth::requestDeviceAccessToken, CibaAuthSignals,
// QRAuthSignals, TokenManagerRegistry and TokenManager::tokensRefreshed.
//
// Every signal is emitted on the thread of the object that emits it (the
// thread it lives in, usually the GUI thread): the library's event thread
// only posts each event to that thread (a queued call), so slots never run
// on a library thread. Destroying an object stops its login or
// subscription first; no signal comes after.
//
// With CMake: find_package(onesoidc REQUIRED COMPONENTS Qt) and
// target_link_libraries(app PRIVATE onesoidc::qt); the package runs moc on
// this header in your build.
#ifndef ONESOIDC_QT_HPP
#define ONESOIDC_QT_HPP

#include <QByteArray>
#include <QList>
#include <QMetaObject>
#include <QObject>
#include <QPair>
#include <QPointer>
#include <QString>
#include <QStringList>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <utility>

#include "onesoidc.hpp"

namespace onesoidc {

inline QString toQString(const std::string &text) { return QString::fromStdString(text); }

/// The device's own token (the original DeviceAuth).
class DeviceAuth {
public:
    explicit DeviceAuth(Client &client) : client_(client) {}

    /// Blocks until the provider answers; throws onesoidc::Error.
    QString requestDeviceAccessToken() { return toQString(client_.deviceToken()); }

    /// The headers of a `method` request to `url` with `accessToken`, to
    /// set with QNetworkRequest::setRawHeader: `Authorization`, and for a
    /// DPoP client (ClientOptions::dpop) a fresh `DPoP` proof. New ones for
    /// every request. Throws onesoidc::Error.
    QList<QPair<QByteArray, QByteArray>> authorizationHeaders(const QString &accessToken, const QString &method,
                                                              const QString &url) {
        const RequestAuthorization headers =
            client_.authorizeRequest(accessToken.toStdString(), method.toStdString(), url.toStdString());
        QList<QPair<QByteArray, QByteArray>> raw;
        raw.append({QByteArrayLiteral("Authorization"), QByteArray::fromStdString(headers.authorization)});
        if (headers.dpop) {
            raw.append({QByteArrayLiteral("DPoP"), QByteArray::fromStdString(*headers.dpop)});
        }
        return raw;
    }

private:
    Client &client_;
};

/// A token manager (the original TokenManager): its events as signals.
/// Made by TokenManagerRegistry::create, which owns it.
class TokenManager : public QObject {
    Q_OBJECT

public:
    TokenManager(Manager manager, const QString &name, QObject *parent = nullptr)
        : QObject(parent), name_(name), manager_(std::move(manager)) {
        subscription_.emplace(manager_.subscribe([this](const Event &event) {
            QMetaObject::invokeMethod(this, [this, event] { deliver(event); }, Qt::QueuedConnection);
        }));
    }

    ~TokenManager() override { subscription_.reset(); }

    QString name() const { return name_; }
    /// A valid access token (refreshing first if needed; blocks then).
    QString accessToken() { return toQString(manager_.accessToken()); }
    /// Puts a login's tokens in the manager (the original storeTokens).
    void storeTokens(const Tokens &tokens) { manager_.store(tokens); }
    /// Refreshes now (the original forceRenewToken); blocks.
    void forceRenewToken() { manager_.forceRefresh(); }
    void clear() { manager_.clear(); }
    QString state() { return toQString(manager_.state()); }
    Manager &manager() { return manager_; }

signals:
    /// The tokens were refreshed; the new token expires in that many seconds.
    void tokensRefreshed(int expiresInSeconds);
    void tokensStored(int expiresInSeconds);
    /// A refresh failed; `status` is ONESOIDC_LOGIN_REQUIRED when the person
    /// has to log in again, else it is retried.
    void refreshFailed(const QString &message, int status);
    void expired();
    void cleared();

private:
    void deliver(const Event &event) {
        const int seconds = static_cast<int>(event.seconds);
        switch (event.kind) {
        case EventKind::TokenRefreshed: emit tokensRefreshed(seconds); break;
        case EventKind::TokenStored: emit tokensStored(seconds); break;
        case EventKind::TokenRefreshFailed:
            emit refreshFailed(toQString(event.message), static_cast<int>(event.status));
            break;
        case EventKind::TokenExpired: emit expired(); break;
        case EventKind::TokenCleared: emit cleared(); break;
        default: break;
        }
    }

    QString name_;
    Manager manager_;
    std::optional<Subscription> subscription_;
};

/// Named token managers (the original TokenManagerRegistry). Owns its
/// managers; destroying it stops them.
class TokenManagerRegistry : public QObject {
    Q_OBJECT

public:
    explicit TokenManagerRegistry(QObject *parent = nullptr) : QObject(parent) {}

    ~TokenManagerRegistry() override {
        for (auto &entry : managers_) {
            delete entry.second;
        }
    }

    /// A new manager called `name`, refreshing from `client` (Refresh::Device:
    /// client credentials, and the client's QR and application requests use
    /// its token; Refresh::User: a person's refresh token, after
    /// storeTokens). Throws onesoidc::Error when the name is taken.
    TokenManager *create(Client &client, const QString &name, Refresh refresh) {
        auto *manager = new TokenManager(registry_.create(client, name.toStdString(), refresh), name, this);
        managers_[name] = manager;
        return manager;
    }

    /// The manager called `name`, or nullptr.
    TokenManager *get(const QString &name) const {
        const auto found = managers_.find(name);
        return found == managers_.end() ? nullptr : found->second;
    }

    /// Stops and deletes the manager called `name`.
    void remove(const QString &name) {
        registry_.remove(name.toStdString());
        const auto found = managers_.find(name);
        if (found != managers_.end()) {
            delete found->second;
            managers_.erase(found);
        }
    }

    QStringList names() {
        QStringList out;
        for (const auto &name : registry_.names()) {
            out << toQString(name);
        }
        return out;
    }

private:
    Registry registry_;
    std::map<QString, TokenManager *> managers_;
};

/// What CIBA and QR logins have in common: a login started in the
/// background whose events become signals on this object's thread.
class LoginSignals : public QObject {
    Q_OBJECT

public:
    ~LoginSignals() override { login_.reset(); }

    /// Stops the running login; finished(ONESOIDC_CANCELLED) follows at
    /// once, and no other signal of that login.
    void cancel() {
        if (!running_) {
            return;
        }
        login_.reset();
        running_ = false;
        emit finished(ONESOIDC_CANCELLED);
    }

    bool isRunning() const { return running_; }

    /// The last login's tokens (nullptr before one succeeded).
    std::shared_ptr<Tokens> tokens() const { return tokens_; }

    /// Stores each successful login's tokens in `manager` (a Refresh::User
    /// manager, e.g. "ciba_user") and forwards its refreshes as tokenRefreshed.
    /// Held through a QPointer: once the registry removes the manager (or is
    /// destroyed) it is forgotten, never touched.
    void setTokenManager(TokenManager *manager) {
        if (manager_ != nullptr) {
            disconnect(manager_, nullptr, this, nullptr);
        }
        manager_ = manager;
        if (manager_ != nullptr) {
            connect(manager_, &TokenManager::tokensRefreshed, this, &LoginSignals::tokenRefreshed);
        }
    }

signals:
    /// Still waiting for the person to approve on their phone.
    void waitingForAuthorization(int remainingSeconds);
    /// The person approved; their tokens are in tokens().
    void authenticated(const QString &accessToken, const QString &subject);
    /// The token manager given to setTokenManager refreshed the person's tokens.
    void tokenRefreshed(int expiresInSeconds);
    /// The login ended: ONESOIDC_OK, or the status of the failure. Always last.
    void finished(int status);
    /// The login failed (any reason); `status` is the onesoidc status.
    void error(const QString &message, int status);
    /// The provider could not be reached (also reported by error()).
    void networkError(const QString &message);
    /// The person denied, cancelled on the phone, or nobody answered in time
    /// (also reported by error()).
    void authenticationError(const QString &message);

protected:
    LoginSignals(Client &client, QObject *parent) : QObject(parent), client_(client) {}

    /// Starts a login with `start`, which receives the handler to give the
    /// library. A login already running is cancelled first.
    void begin(const std::function<Login(EventHandler)> &start) {
        cancel();
        const unsigned generation = ++generation_;
        running_ = true;
        try {
            login_.emplace(start([this, generation](const Event &event) {
                // On the library's event thread: only post to ours.
                QMetaObject::invokeMethod(
                    this, [this, generation, event] { deliver(generation, event); }, Qt::QueuedConnection);
            }));
        } catch (const Error &failure) {
            running_ = false;
            fail(toQString(failure.what()), failure.code());
        }
    }

    /// The events only one kind of login has.
    virtual void deliverOther(const Event &event) = 0;

    Client &client_;

private:
    void deliver(unsigned generation, const Event &event) {
        if (generation != generation_ || !running_) {
            return;  // from a login cancelled or replaced since
        }
        switch (event.kind) {
        case EventKind::WaitingForAuthorization:
            emit waitingForAuthorization(static_cast<int>(event.seconds));
            break;
        case EventKind::Authenticated: {
            running_ = false;
            tokens_ = event.tokens;
            QString token;
            QString subject;
            try {
                if (tokens_) {
                    token = toQString(tokens_->accessToken());
                    subject = toQString(tokens_->subject().value_or(std::string()));
                    if (TokenManager *manager = manager_.data()) {
                        manager->storeTokens(*tokens_);
                    }
                }
            } catch (const Error &failure) {
                fail(toQString(failure.what()), failure.code());
                return;
            }
            emit authenticated(token, subject);
            emit finished(ONESOIDC_OK);
            break;
        }
        case EventKind::Failed:
            running_ = false;
            fail(toQString(event.message), static_cast<int>(event.status));
            break;
        default:
            deliverOther(event);
            break;
        }
    }

    void fail(const QString &message, int status) {
        emit error(message, status);
        if (status == ONESOIDC_NETWORK) {
            emit networkError(message);
        } else if (status == ONESOIDC_DENIED || status == ONESOIDC_EXPIRED) {
            emit authenticationError(message);
        }
        emit finished(status);
    }

    std::optional<Login> login_;
    std::shared_ptr<Tokens> tokens_;
    QPointer<TokenManager> manager_;
    unsigned generation_ = 0;
    bool running_ = false;
};

/// A CIBA login with signals (the original CibaAuthSignals): started,
/// waitingForAuthorization, authenticated, tokenRefreshed, finished, error,
/// networkError, authenticationError.
class CibaAuthSignals : public LoginSignals {
    Q_OBJECT

public:
    explicit CibaAuthSignals(Client &client, QObject *parent = nullptr) : LoginSignals(client, parent) {}

    /// Asks `username` to approve on their phone (the original
    /// CibaAuth::cibaRequest) and reports each step as a signal.
    void cibaRequest(const QString &username, const QString &bindingMessage = QString(),
                     const QString &resource = QString()) {
        begin([&](EventHandler handler) {
            return client_.startCibaLogin(username.toStdString(),
                                          CibaOptions{bindingMessage.toStdString(), resource.toStdString()},
                                          std::move(handler));
        });
    }

signals:
    /// The provider accepted the request; the person has that long to answer.
    void started(const QString &authReqId, int expiresInSeconds);

protected:
    void deliverOther(const Event &event) override {
        if (event.kind == EventKind::Started) {
            emit started(toQString(event.id), static_cast<int>(event.seconds));
        }
    }
};

/// A QR login with signals (the original QRAuthSignals): qrSessionCreated,
/// waitingForScan, scanned, authorizationRequested, waitingForAuthorization,
/// authenticated, tokenRefreshed, finished, error, networkError,
/// authenticationError.
class QRAuthSignals : public LoginSignals {
    Q_OBJECT

public:
    explicit QRAuthSignals(Client &client, QObject *parent = nullptr) : LoginSignals(client, parent) {}

    /// Creates a session and reports each step; show the code from
    /// qrSessionCreated (see qrCode()).
    void start(const QString &bindingMessage = QString(), const QString &resource = QString()) {
        begin([&](EventHandler handler) {
            return client_.startQrLogin(CibaOptions{bindingMessage.toStdString(), resource.toStdString()},
                                        std::move(handler));
        });
    }

    /// `url` drawn as a QR code (the original generateQRCode / generateASCIIQRCode).
    static QString qrCode(const QString &url, QrFormat format = QrFormat::Unicode) {
        return toQString(renderQr(url.toStdString(), format));
    }

signals:
    /// The session exists: show `url` as a code (qrCode()) for that many seconds.
    void qrSessionCreated(const QString &url, const QString &sessionId, int expiresInSeconds);
    void waitingForScan(int remainingSeconds);
    void scanned();
    /// After the scan, the provider accepted the CIBA request.
    void authorizationRequested(const QString &authReqId, int expiresInSeconds);

protected:
    void deliverOther(const Event &event) override {
        const int seconds = static_cast<int>(event.seconds);
        switch (event.kind) {
        case EventKind::QrSessionCreated:
            emit qrSessionCreated(toQString(event.url), toQString(event.id), seconds);
            break;
        case EventKind::QrWaitingForScan: emit waitingForScan(seconds); break;
        case EventKind::QrScanned: emit scanned(); break;
        case EventKind::Started: emit authorizationRequested(toQString(event.id), seconds); break;
        default: break;
        }
    }
};

}  // namespace onesoidc

#endif  // ONESOIDC_QT_HPP
