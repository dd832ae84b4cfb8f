// onesoidc.hpp: a header-only C++17 layer over onesoidc.h.
//
// RAII handles (move-only; the destructor frees), std::string in and out,
// and onesoidc::Error (a std::runtime_error carrying the status code) for
// every failure. Thread rules are the C API's: objects may be used from
// several threads at once; an event handler runs on the library's event
// thread for its login or subscription (see onesoidc_event_callback), and
// once a Login or Subscription is destroyed (or cancelled) its handler no
// longer runs. A Login or Subscription may be destroyed, reset or
// reassigned at any time from any thread, its own handler included: the
// handler call in progress, and what it captured, live until it returns.
// Tokens returned as std::string are ordinary copies: the C
// strings behind them are zeroed, the std::strings are not.
//
//   onesoidc::Client client;                       // device.yml + key from the defaults
//   std::string token = client.deviceToken();
//   onesoidc::Tokens login = client.cibaLogin("alice", "Kiosk 7");
//   std::cout << *login.subject() << '\n';
#ifndef ONESOIDC_HPP
#define ONESOIDC_HPP

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "onesoidc.h"

namespace onesoidc {

/// A failed call: what() is onesoidc_last_error()'s message, status() its
/// code (ONESOIDC_DENIED, ONESOIDC_EXPIRED, ONESOIDC_NETWORK, ...).
class Error : public std::runtime_error {
public:
    Error(int status, const std::string &message) : std::runtime_error(message), status_(status) {}

    int status() const noexcept { return status_; }
    /// The person denied the login, or cancelled it on the phone.
    bool isDenied() const noexcept { return status_ == ONESOIDC_DENIED; }
    /// Nobody answered in time.
    bool isExpired() const noexcept { return status_ == ONESOIDC_EXPIRED; }
    /// The provider could not be reached: try again later.
    bool isNetwork() const noexcept { return status_ == ONESOIDC_NETWORK; }
    /// The person has to log in again.
    bool requiresLogin() const noexcept { return status_ == ONESOIDC_LOGIN_REQUIRED; }

private:
    int status_;
};

namespace detail {

/// Throws Error for a failed status.
inline void check(int status) {
    if (status != ONESOIDC_OK) {
        throw Error(status, onesoidc_last_error());
    }
}

/// Copies an owned C string and frees (zeroes) it at once.
inline std::optional<std::string> takeOptional(char *text) {
    if (text == nullptr) {
        return std::nullopt;
    }
    std::string copy(text);
    onesoidc_string_free(text);
    return copy;
}

inline std::string take(char *text) { return takeOptional(text).value_or(std::string()); }

/// NULL for an empty string (the C API's "none").
inline const char *orNull(const std::string &text) { return text.empty() ? nullptr : text.c_str(); }

template <typename T, void (*Free)(T *)>
struct Deleter {
    void operator()(T *raw) const noexcept { Free(raw); }
};

template <typename T, void (*Free)(T *)>
using Handle = std::unique_ptr<T, Deleter<T, Free>>;

/// Lines of an owned C string.
inline std::vector<std::string> lines(const std::string &text) {
    std::vector<std::string> out;
    std::string::size_type start = 0;
    while (start < text.size()) {
        auto end = text.find('\n', start);
        if (end == std::string::npos) {
            end = text.size();
        }
        out.push_back(text.substr(start, end - start));
        start = end + 1;
    }
    return out;
}

}  // namespace detail

/// The library's version, e.g. "0.1.0".
inline std::string version() { return onesoidc_version(); }

/// One field of device.yml (see onesoidc_device_config_field); nullopt when
/// the file has none. An empty path means the default place.
inline std::optional<std::string> deviceConfigField(const std::string &field,
                                                    const std::string &deviceYml = {}) {
    char *value = nullptr;
    detail::check(onesoidc_device_config_field(detail::orNull(deviceYml), field.c_str(), &value));
    return detail::takeOptional(value);
}

/// A login's (or the device's) tokens.
class Tokens {
public:
    /// Takes ownership of `raw`.
    explicit Tokens(onesoidc_tokens *raw) noexcept : raw_(raw) {}

    std::string accessToken() const {
        char *token = nullptr;
        detail::check(onesoidc_tokens_access_token(raw_.get(), &token));
        return detail::take(token);
    }
    std::optional<std::string> idToken() const {
        char *token = nullptr;
        detail::check(onesoidc_tokens_id_token(raw_.get(), &token));
        return detail::takeOptional(token);
    }
    /// `sub` of the validated ID token (the username), if there was one.
    std::optional<std::string> subject() const {
        char *subject = nullptr;
        detail::check(onesoidc_tokens_subject(raw_.get(), &subject));
        return detail::takeOptional(subject);
    }
    std::optional<std::chrono::system_clock::time_point> expiresAt() const {
        const std::int64_t at = onesoidc_tokens_expires_at(raw_.get());
        if (at < 0) {
            return std::nullopt;
        }
        return std::chrono::system_clock::time_point(std::chrono::seconds(at));
    }
    bool hasRefreshToken() const { return onesoidc_tokens_has_refresh_token(raw_.get()); }

    const onesoidc_tokens *get() const noexcept { return raw_.get(); }

private:
    detail::Handle<onesoidc_tokens, onesoidc_tokens_free> raw_;
};

/// A copy of one event, safe to keep and to hand to another thread.
struct Event {
    int kind = ONESOIDC_EVENT_OTHER;  ///< ONESOIDC_EVENT_*
    std::string message;              ///< a line for a log or a UI, never a token
    int status = ONESOIDC_OK;         ///< the failure's code for FAILED and TOKEN_REFRESH_FAILED
    std::uint64_t seconds = 0;        ///< see onesoidc_event_seconds
    std::string id;                   ///< auth_req_id (STARTED) or QR session id
    std::string url;                  ///< the QR code's URL (QR_SESSION_CREATED)
    std::shared_ptr<Tokens> tokens;   ///< the person's tokens (AUTHENTICATED)

    /// The last event of a login.
    bool isLast() const noexcept {
        return kind == ONESOIDC_EVENT_AUTHENTICATED || kind == ONESOIDC_EVENT_FAILED;
    }

    /// Copies the event lent to a callback.
    static Event copy(const onesoidc_event *event) {
        Event out;
        out.kind = onesoidc_event_kind(event);
        out.message = onesoidc_event_message(event);
        out.status = onesoidc_event_status(event);
        out.seconds = onesoidc_event_seconds(event);
        if (const char *id = onesoidc_event_id(event)) {
            out.id = id;
        }
        if (const char *url = onesoidc_event_url(event)) {
            out.url = url;
        }
        if (out.kind == ONESOIDC_EVENT_AUTHENTICATED) {
            onesoidc_tokens *tokens = nullptr;
            if (onesoidc_event_tokens(event, &tokens) == ONESOIDC_OK) {
                out.tokens = std::make_shared<Tokens>(tokens);
            }
        }
        return out;
    }
};

/// Called with each event, on the library's event thread.
using EventHandler = std::function<void(const Event &)>;

namespace detail {

/// What a callback's user_data points to: the handler, shared between the
/// owning Login or Subscription and each running callback. The callback
/// takes its own reference for the whole call, so the owner may be
/// destroyed, reset or reassigned from inside the handler (or from another
/// thread) and the handler, with everything it captured, stays alive until
/// it returns.
template <typename Handler>
struct HandlerState : std::enable_shared_from_this<HandlerState<Handler>> {
    explicit HandlerState(Handler handler) : handler(std::move(handler)) {}

    Handler handler;
    /// Raised when the owner lets go (destroyed, reset, reassigned): no
    /// handler call starts after that.
    std::atomic<bool> released{false};
    /// Released by each callback as it ends; acquired by wait(): the
    /// happens-after edge made visible to tools (ThreadSanitizer) that do
    /// not see the library's own synchronisation.
    std::atomic<unsigned> calls{0};

    /// A reference for the duration of a callback. The owner frees the C
    /// handle (which waits for a running callback, or from the callback's
    /// own thread stops further ones) before dropping its reference, so
    /// the state is alive whenever the library calls back.
    std::shared_ptr<HandlerState> keep() noexcept {
        try {
            return this->shared_from_this();
        } catch (...) {
            return nullptr;
        }
    }
};

using EventHandlerState = HandlerState<EventHandler>;

inline void callEventHandler(void *userData, const onesoidc_event *event) noexcept {
    const auto state = static_cast<EventHandlerState *>(userData)->keep();
    if (!state) {
        return;
    }
    try {
        if (!state->released.load()) {
            state->handler(Event::copy(event));
        }
    } catch (...) {
        // Nothing may unwind into the library's thread.
    }
    state->calls.fetch_add(1, std::memory_order_release);
}

}  // namespace detail

/// A login running in the background (Client::startCibaLogin,
/// Client::startQrLogin). Destroying it (or resetting or reassigning the
/// variable holding it) cancels it if it is still running; from any thread
/// other than the handler's it also waits until the handler no longer
/// runs. From inside its own handler it is safe too: the handler call in
/// progress, and everything the handler captured, live until that call
/// returns, and no further call starts.
class Login {
public:
    Login(std::shared_ptr<detail::EventHandlerState> state, onesoidc_login *raw) noexcept
        : state_(std::move(state)), raw_(raw) {}
    Login(Login &&other) noexcept : state_(std::move(other.state_)), raw_(std::exchange(other.raw_, nullptr)) {}
    /// Ends the login held before (as the destructor) before taking `other`'s.
    Login &operator=(Login &&other) noexcept {
        if (this != &other) {
            release();
            state_ = std::move(other.state_);
            raw_ = std::exchange(other.raw_, nullptr);
        }
        return *this;
    }
    Login(const Login &) = delete;
    Login &operator=(const Login &) = delete;
    ~Login() { release(); }

    /// Stops the login; the handler does not run after this returns (unless
    /// called from the handler itself).
    void cancel() noexcept { onesoidc_login_cancel(raw_); }

    /// Waits up to `timeout` for the login's end; its status, or
    /// ONESOIDC_PENDING when still running.
    int wait(std::chrono::milliseconds timeout) {
        const int status = onesoidc_login_wait(raw_, static_cast<std::uint64_t>(timeout.count()));
        if (status == ONESOIDC_INVALID_ARGUMENT) {
            detail::check(status);
        }
        if (state_) {
            state_->calls.load(std::memory_order_acquire);
        }
        return status;
    }

private:
    /// Frees the C handle (cancelling; waiting for a running handler unless
    /// on its thread), then lets go of the handler: a call in progress keeps
    /// it alive until it returns.
    void release() noexcept {
        if (state_) {
            state_->released.store(true);
        }
        onesoidc_login_free(std::exchange(raw_, nullptr));
        state_.reset();
    }

    std::shared_ptr<detail::EventHandlerState> state_;
    onesoidc_login *raw_ = nullptr;
};

/// An accepted CIBA request waiting for the person (Client::cibaStart).
class CibaRequest {
public:
    explicit CibaRequest(onesoidc_ciba *raw) noexcept : raw_(raw) {}

    std::string authReqId() const {
        char *id = nullptr;
        detail::check(onesoidc_ciba_auth_req_id(raw_.get(), &id));
        return detail::take(id);
    }
    std::chrono::seconds expiresIn() const { return std::chrono::seconds(onesoidc_ciba_expires_in(raw_.get())); }
    /// The wait before the next check().
    std::chrono::seconds interval() const { return std::chrono::seconds(onesoidc_ciba_interval(raw_.get())); }

    onesoidc_ciba *get() const noexcept { return raw_.get(); }

private:
    detail::Handle<onesoidc_ciba, onesoidc_ciba_free> raw_;
};

/// How to draw a QR code.
enum class QrFormat : int { Ascii = ONESOIDC_QR_ASCII, Unicode = ONESOIDC_QR_UNICODE, Svg = ONESOIDC_QR_SVG };

/// `text` (a session's URL) drawn as a QR code.
inline std::string renderQr(const std::string &text, QrFormat format = QrFormat::Unicode) {
    char *drawn = nullptr;
    detail::check(onesoidc_qr_render(text.c_str(), static_cast<int>(format), &drawn));
    return detail::take(drawn);
}

/// A QR login session (Client::qrCreate).
class QrSession {
public:
    explicit QrSession(onesoidc_qr_session *raw) noexcept : raw_(raw) {}

    std::string url() const {
        char *url = nullptr;
        detail::check(onesoidc_qr_session_url(raw_.get(), &url));
        return detail::take(url);
    }
    std::string id() const {
        char *id = nullptr;
        detail::check(onesoidc_qr_session_id(raw_.get(), &id));
        return detail::take(id);
    }
    std::chrono::seconds expiresIn() const {
        return std::chrono::seconds(onesoidc_qr_session_expires_in(raw_.get()));
    }
    std::string render(QrFormat format = QrFormat::Unicode) const { return renderQr(url(), format); }

    onesoidc_qr_session *get() const noexcept { return raw_.get(); }

private:
    detail::Handle<onesoidc_qr_session, onesoidc_qr_session_free> raw_;
};

/// A well-known application.
struct Application {
    std::string clientIdentifier;
    std::string url;
    std::string name;
};

/// An ID token's validated claims.
struct IdTokenClaims {
    std::string subject;
    std::string json;  ///< every claim, as a JSON object
};

/// The provider's answer to an introspection.
struct Introspection {
    bool active = false;
    std::string json;  ///< the whole answer, as a JSON object
};

/// A registered device and its provider.
class Client {
public:
    /// The identity from the defaults (ONESOIDC_DEVICE_CONFIG /
    /// ONESOIDC_KEY_DIR, else px-device-identity's places).
    Client() : Client(std::string(), std::string()) {}

    /// The identity at `deviceYml` and `keyDir` (an empty string: the default).
    Client(const std::string &deviceYml, const std::string &keyDir) {
        onesoidc_client *raw = nullptr;
        detail::check(onesoidc_client_new(detail::orNull(deviceYml), detail::orNull(keyDir), &raw));
        raw_.reset(raw);
    }

    /// The device's own access token (DeviceAuth::requestDeviceAccessToken).
    std::string deviceToken() {
        char *token = nullptr;
        detail::check(onesoidc_device_token(raw_.get(), &token));
        return detail::take(token);
    }

    std::string applicationUrl(const std::string &clientIdentifier) {
        char *url = nullptr;
        detail::check(onesoidc_application_url(raw_.get(), clientIdentifier.c_str(), &url));
        return detail::take(url);
    }

    std::vector<Application> applications() {
        char *text = nullptr;
        detail::check(onesoidc_applications(raw_.get(), &text));
        std::vector<Application> out;
        for (const auto &line : detail::lines(detail::take(text))) {
            const auto first = line.find('\t');
            const auto second = line.find('\t', first + 1);
            if (first == std::string::npos || second == std::string::npos) {
                continue;
            }
            out.push_back({line.substr(0, first), line.substr(first + 1, second - first - 1),
                           line.substr(second + 1)});
        }
        return out;
    }

    /// A whole CIBA login, blocking until the person answers.
    Tokens cibaLogin(const std::string &username, const std::string &bindingMessage = {},
                     const std::string &resource = {}) {
        CibaRequest request = cibaStart(username, bindingMessage, resource);
        return cibaWait(request);
    }

    /// Sends a CIBA request (CibaAuth::cibaRequest).
    CibaRequest cibaStart(const std::string &username, const std::string &bindingMessage = {},
                          const std::string &resource = {}) {
        onesoidc_ciba *raw = nullptr;
        detail::check(onesoidc_ciba_start(raw_.get(), username.c_str(), detail::orNull(bindingMessage),
                                          detail::orNull(resource), &raw));
        return CibaRequest(raw);
    }

    /// Asks once (CibaAuth::checkCibaStatus): the tokens, or nullopt while pending.
    std::optional<Tokens> cibaCheck(CibaRequest &request) {
        onesoidc_tokens *raw = nullptr;
        const int status = onesoidc_ciba_check(raw_.get(), request.get(), &raw);
        if (status == ONESOIDC_PENDING) {
            return std::nullopt;
        }
        detail::check(status);
        return Tokens(raw);
    }

    /// Polls until the person answers.
    Tokens cibaWait(CibaRequest &request) {
        onesoidc_tokens *raw = nullptr;
        detail::check(onesoidc_ciba_wait(raw_.get(), request.get(), &raw));
        return Tokens(raw);
    }

    /// A CIBA login in the background, each step handed to `handler` on the
    /// library's event thread (CibaAuthSignals).
    Login startCibaLogin(const std::string &username, const std::string &bindingMessage,
                         const std::string &resource, EventHandler handler) {
        auto state = std::make_shared<detail::EventHandlerState>(std::move(handler));
        onesoidc_login *raw = nullptr;
        detail::check(onesoidc_ciba_login_start(raw_.get(), username.c_str(), detail::orNull(bindingMessage),
                                                detail::orNull(resource), &detail::callEventHandler,
                                                state.get(), &raw));
        return Login(std::move(state), raw);
    }

    /// Creates a QR session (QRAuth::createQRSession).
    QrSession qrCreate() {
        onesoidc_qr_session *raw = nullptr;
        detail::check(onesoidc_qr_create(raw_.get(), &raw));
        return QrSession(raw);
    }

    /// Waits for the phone to scan the session's code.
    void qrWaitForScan(QrSession &session) { detail::check(onesoidc_qr_wait_for_scan(raw_.get(), session.get())); }

    /// After the scan: the CIBA login of the person who scanned.
    Tokens qrCibaLogin(QrSession &session, const std::string &bindingMessage = {},
                       const std::string &resource = {}) {
        onesoidc_tokens *raw = nullptr;
        detail::check(onesoidc_qr_ciba_login(raw_.get(), session.get(), detail::orNull(bindingMessage),
                                             detail::orNull(resource), &raw));
        return Tokens(raw);
    }

    /// A whole QR login in the background (QRAuthSignals).
    Login startQrLogin(const std::string &bindingMessage, const std::string &resource, EventHandler handler) {
        auto state = std::make_shared<detail::EventHandlerState>(std::move(handler));
        onesoidc_login *raw = nullptr;
        detail::check(onesoidc_qr_login_start(raw_.get(), detail::orNull(bindingMessage), detail::orNull(resource),
                                              &detail::callEventHandler, state.get(), &raw));
        return Login(std::move(state), raw);
    }

    IdTokenClaims validateIdToken(const std::string &idToken) {
        char *subject = nullptr;
        char *json = nullptr;
        detail::check(onesoidc_validate_id_token(raw_.get(), idToken.c_str(), &subject, &json));
        return {detail::take(subject), detail::take(json)};
    }

    Introspection introspect(const std::string &token) {
        Introspection out;
        char *json = nullptr;
        detail::check(onesoidc_introspect(raw_.get(), token.c_str(), &out.active, &json));
        out.json = detail::take(json);
        return out;
    }

    void revoke(const std::string &token) { detail::check(onesoidc_revoke(raw_.get(), token.c_str())); }

    onesoidc_client *get() const noexcept { return raw_.get(); }

private:
    detail::Handle<onesoidc_client, onesoidc_client_free> raw_;
};

/// A manager's events going to a handler; destroying it (or resetting or
/// reassigning the variable holding it) stops them, with the same
/// guarantees as Login: from another thread it waits for a running
/// handler; from inside the handler, that call and its captures live
/// until it returns, and no further call starts.
class Subscription {
public:
    Subscription(std::shared_ptr<detail::EventHandlerState> state, onesoidc_subscription *raw) noexcept
        : state_(std::move(state)), raw_(raw) {}
    Subscription(Subscription &&other) noexcept
        : state_(std::move(other.state_)), raw_(std::exchange(other.raw_, nullptr)) {}
    /// Ends the subscription held before (as the destructor) before taking `other`'s.
    Subscription &operator=(Subscription &&other) noexcept {
        if (this != &other) {
            release();
            state_ = std::move(other.state_);
            raw_ = std::exchange(other.raw_, nullptr);
        }
        return *this;
    }
    Subscription(const Subscription &) = delete;
    Subscription &operator=(const Subscription &) = delete;
    ~Subscription() { release(); }

private:
    void release() noexcept {
        if (state_) {
            state_->released.store(true);
        }
        onesoidc_subscription_free(std::exchange(raw_, nullptr));
        state_.reset();
    }

    std::shared_ptr<detail::EventHandlerState> state_;
    onesoidc_subscription *raw_ = nullptr;
};

/// How a manager refreshes.
enum class Refresh : int { Device = ONESOIDC_REFRESH_DEVICE, User = ONESOIDC_REFRESH_USER };

/// A handle on a token manager (TokenManager).
class Manager {
public:
    explicit Manager(onesoidc_manager *raw) noexcept : raw_(raw) {}

    /// A valid access token, refreshing first if needed.
    std::string accessToken() {
        char *token = nullptr;
        detail::check(onesoidc_manager_access_token(raw_.get(), &token));
        return detail::take(token);
    }
    /// storeTokens
    void store(const Tokens &tokens) { detail::check(onesoidc_manager_store(raw_.get(), tokens.get())); }
    /// forceRenewToken
    void forceRefresh() { detail::check(onesoidc_manager_force_refresh(raw_.get())); }
    void clear() { detail::check(onesoidc_manager_clear(raw_.get())); }
    std::string state() {
        char *state = nullptr;
        detail::check(onesoidc_manager_state(raw_.get(), &state));
        return detail::take(state);
    }
    /// Each event from now on to `handler`, on the library's event thread.
    Subscription subscribe(EventHandler handler) {
        auto state = std::make_shared<detail::EventHandlerState>(std::move(handler));
        onesoidc_subscription *raw = nullptr;
        detail::check(onesoidc_manager_subscribe(raw_.get(), &detail::callEventHandler, state.get(), &raw));
        return Subscription(std::move(state), raw);
    }

    onesoidc_manager *get() const noexcept { return raw_.get(); }

private:
    detail::Handle<onesoidc_manager, onesoidc_manager_free> raw_;
};

/// Named token managers (TokenManagerRegistry). Destroying it stops them.
class Registry {
public:
    Registry() {
        onesoidc_registry *raw = nullptr;
        detail::check(onesoidc_registry_new(&raw));
        raw_.reset(raw);
    }

    Manager create(Client &client, const std::string &name, Refresh refresh) {
        onesoidc_manager *raw = nullptr;
        detail::check(onesoidc_registry_create(raw_.get(), client.get(), name.c_str(), static_cast<int>(refresh), &raw));
        return Manager(raw);
    }
    Manager get(const std::string &name) {
        onesoidc_manager *raw = nullptr;
        detail::check(onesoidc_registry_get(raw_.get(), name.c_str(), &raw));
        return Manager(raw);
    }
    void remove(const std::string &name) { detail::check(onesoidc_registry_remove(raw_.get(), name.c_str())); }
    std::vector<std::string> names() {
        char *text = nullptr;
        detail::check(onesoidc_registry_names(raw_.get(), &text));
        return detail::lines(detail::take(text));
    }

private:
    detail::Handle<onesoidc_registry, onesoidc_registry_free> raw_;
};

}  // namespace onesoidc

#endif  // ONESOIDC_HPP
