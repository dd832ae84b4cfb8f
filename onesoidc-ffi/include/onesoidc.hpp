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
//   onesoidc::Tokens device = client.deviceTokens();  // accessToken(), expiresAt(), tokenType()
//   onesoidc::Tokens login = client.cibaLogin("alice", {"Kiosk 7"});
//   std::cout << *login.subject() << '\n';
//
// Statuses and event kinds are enum classes (Status, EventKind, with
// to_string); a started login can be waited for with get() (its tokens, or
// the Error it failed with) or turned into a std::future (toFuture).
#ifndef ONESOIDC_HPP
#define ONESOIDC_HPP

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "onesoidc.h"

namespace onesoidc {

/// A call's outcome: the C API's ONESOIDC_* status codes.
enum class Status : int {
    Ok = ONESOIDC_OK,
    Error = ONESOIDC_ERROR,                       ///< anything else; the message says what
    InvalidArgument = ONESOIDC_INVALID_ARGUMENT,  ///< a bad argument or call (a bug in the caller)
    Denied = ONESOIDC_DENIED,                     ///< the person denied, or cancelled on the phone
    Expired = ONESOIDC_EXPIRED,                   ///< nobody answered in time
    Network = ONESOIDC_NETWORK,                   ///< the provider could not be reached: try again later
    LoginRequired = ONESOIDC_LOGIN_REQUIRED,      ///< the person has to log in again
    Pending = ONESOIDC_PENDING,                   ///< not finished yet
    Panic = ONESOIDC_PANIC,                       ///< a bug in onesoidc (caught)
    Config = ONESOIDC_CONFIG,                     ///< device.yml or the key: fix the files, or register
    Cancelled = ONESOIDC_CANCELLED,               ///< cancelled by the program
};

/// The status's name, e.g. "denied"; "status N" for a code this header
/// does not know.
inline std::string to_string(Status status) {
    switch (status) {
    case Status::Ok: return "ok";
    case Status::Error: return "error";
    case Status::InvalidArgument: return "invalid argument";
    case Status::Denied: return "denied";
    case Status::Expired: return "expired";
    case Status::Network: return "network";
    case Status::LoginRequired: return "login required";
    case Status::Pending: return "pending";
    case Status::Panic: return "panic";
    case Status::Config: return "config";
    case Status::Cancelled: return "cancelled";
    }
    return "status " + std::to_string(static_cast<int>(status));
}

/// What an event reports: the C API's ONESOIDC_EVENT_* kinds.
enum class EventKind : int {
    Other = ONESOIDC_EVENT_OTHER,  ///< a kind this header does not name: show its message
    Started = ONESOIDC_EVENT_STARTED,
    WaitingForAuthorization = ONESOIDC_EVENT_WAITING_FOR_AUTHORIZATION,
    Authenticated = ONESOIDC_EVENT_AUTHENTICATED,  ///< last event of a login
    Failed = ONESOIDC_EVENT_FAILED,                ///< last event of a login
    QrSessionCreated = ONESOIDC_EVENT_QR_SESSION_CREATED,
    QrWaitingForScan = ONESOIDC_EVENT_QR_WAITING_FOR_SCAN,
    QrScanned = ONESOIDC_EVENT_QR_SCANNED,
    TokenRefreshed = ONESOIDC_EVENT_TOKEN_REFRESHED,
    TokenStored = ONESOIDC_EVENT_TOKEN_STORED,
    TokenRefreshFailed = ONESOIDC_EVENT_TOKEN_REFRESH_FAILED,
    TokenExpired = ONESOIDC_EVENT_TOKEN_EXPIRED,
    TokenCleared = ONESOIDC_EVENT_TOKEN_CLEARED,
};

/// The kind's name as the C macro has it, e.g. "AUTHENTICATED".
inline std::string to_string(EventKind kind) {
    switch (kind) {
    case EventKind::Other: return "OTHER";
    case EventKind::Started: return "STARTED";
    case EventKind::WaitingForAuthorization: return "WAITING_FOR_AUTHORIZATION";
    case EventKind::Authenticated: return "AUTHENTICATED";
    case EventKind::Failed: return "FAILED";
    case EventKind::QrSessionCreated: return "QR_SESSION_CREATED";
    case EventKind::QrWaitingForScan: return "QR_WAITING_FOR_SCAN";
    case EventKind::QrScanned: return "QR_SCANNED";
    case EventKind::TokenRefreshed: return "TOKEN_REFRESHED";
    case EventKind::TokenStored: return "TOKEN_STORED";
    case EventKind::TokenRefreshFailed: return "TOKEN_REFRESH_FAILED";
    case EventKind::TokenExpired: return "TOKEN_EXPIRED";
    case EventKind::TokenCleared: return "TOKEN_CLEARED";
    }
    return "OTHER";
}

/// A failed call: what() is onesoidc_last_error()'s message (or the
/// failed login's), status() its code.
class Error : public std::runtime_error {
public:
    Error(Status status, const std::string &message) : std::runtime_error(message), status_(status) {}
    Error(int status, const std::string &message) : Error(static_cast<Status>(status), message) {}

    Status status() const noexcept { return status_; }
    /// The status as the C API's int (ONESOIDC_*).
    int code() const noexcept { return static_cast<int>(status_); }
    /// The person denied the login, or cancelled it on the phone.
    bool isDenied() const noexcept { return status_ == Status::Denied; }
    /// Nobody answered in time.
    bool isExpired() const noexcept { return status_ == Status::Expired; }
    /// The provider could not be reached: try again later.
    bool isNetwork() const noexcept { return status_ == Status::Network; }
    /// The person has to log in again.
    bool requiresLogin() const noexcept { return status_ == Status::LoginRequired; }
    /// device.yml or the device key is the problem (missing, unreadable,
    /// a field missing, not registered): retrying does not help.
    bool isConfig() const noexcept { return status_ == Status::Config; }

private:
    Status status_;
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

namespace detail {

/// The C argument for an optional path: NULL for the default (nullopt);
/// an empty path is an Error (it would silently mean the default).
inline const char *pathOrNull(const std::optional<std::filesystem::path> &path, const char *name) {
    if (!path) {
        return nullptr;
    }
    if (path->empty()) {
        throw Error(Status::InvalidArgument,
                    std::string(name) + " is an empty path; pass std::nullopt for the default place");
    }
    return path->c_str();
}

}  // namespace detail

/// One field of device.yml (see onesoidc_device_config_field); nullopt when
/// the file has none. `deviceYml` nullopt means the default place.
inline std::optional<std::string> deviceConfigField(const std::string &field,
                                                    const std::optional<std::filesystem::path> &deviceYml = std::nullopt) {
    char *value = nullptr;
    detail::check(onesoidc_device_config_field(detail::pathOrNull(deviceYml, "deviceYml"), field.c_str(), &value));
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
    /// The access token's type, e.g. "Bearer".
    std::string tokenType() const {
        char *type = nullptr;
        detail::check(onesoidc_tokens_token_type(raw_.get(), &type));
        return detail::take(type);
    }

    const onesoidc_tokens *get() const noexcept { return raw_.get(); }

private:
    detail::Handle<onesoidc_tokens, onesoidc_tokens_free> raw_;
};

/// A copy of one event, safe to keep and to hand to another thread.
struct Event {
    EventKind kind = EventKind::Other;
    std::string message;              ///< a line for a log or a UI, never a token
    Status status = Status::Ok;       ///< the failure's code for Failed and TokenRefreshFailed
    std::uint64_t seconds = 0;        ///< see onesoidc_event_seconds
    std::string id;                   ///< auth_req_id (STARTED) or QR session id
    std::string url;                  ///< the QR code's URL (QR_SESSION_CREATED)
    std::shared_ptr<Tokens> tokens;   ///< the person's tokens (AUTHENTICATED)

    /// The last event of a login.
    bool isLast() const noexcept { return kind == EventKind::Authenticated || kind == EventKind::Failed; }

    /// Copies the event lent to a callback.
    static Event copy(const onesoidc_event *event) {
        Event out;
        out.kind = static_cast<EventKind>(onesoidc_event_kind(event));
        out.message = onesoidc_event_message(event);
        out.status = static_cast<Status>(onesoidc_event_status(event));
        out.seconds = onesoidc_event_seconds(event);
        if (const char *id = onesoidc_event_id(event)) {
            out.id = id;
        }
        if (const char *url = onesoidc_event_url(event)) {
            out.url = url;
        }
        if (out.kind == EventKind::Authenticated) {
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

class Login;

/// A login's handler: each event, and the login itself (a view of it
/// valid during the call: call cancel() on it to end the login; it works
/// even for events that come before startCibaLogin/startQrLogin returns).
using LoginHandler = std::function<void(Login &, const Event &)>;

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
    /// Raised when the owner lets go (destroyed, reset, reassigned) or the
    /// login is cancelled: no handler call starts after that.
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

/// A login's handler state, plus its C handle (for the handler's view)
/// and its outcome (for get()).
struct LoginState : HandlerState<LoginHandler> {
    using HandlerState::HandlerState;

    /// Guards `raw` between the owner (who sets and frees it) and the
    /// handler's view (which cancels through it).
    std::mutex mutex;
    onesoidc_login *raw = nullptr;
    /// The outcome, written by the callback of the last event before it
    /// returns (so before wait() returns), under `mutex`.
    std::optional<Tokens> tokens;
    std::string failure;

    /// Cancels from the handler's view: the flag stops further handler
    /// calls at once, and the C login when it exists.
    void cancel() noexcept {
        std::lock_guard<std::mutex> lock(mutex);
        released.store(true);
        onesoidc_login_cancel(raw);
    }

    static void call(void *userData, const onesoidc_event *event) noexcept;
};

}  // namespace detail

/// A login running in the background (Client::startCibaLogin,
/// Client::startQrLogin). Destroying it (or resetting or reassigning the
/// variable holding it) cancels it if it is still running; from any thread
/// other than the handler's it also waits until the handler no longer
/// runs. From inside its own handler it is safe too: the handler call in
/// progress, and everything the handler captured, live until that call
/// returns, and no further call starts.
///
/// wait() and get() return after the handler's call for the last event has
/// returned: everything a handler wrote happens-before they return (no
/// other synchronisation is needed to read it afterwards).
class Login {
public:
    Login(Login &&other) noexcept
        : state_(std::move(other.state_)), owner_(std::exchange(other.owner_, false)) {}
    /// Ends the login held before (as the destructor) before taking `other`'s.
    Login &operator=(Login &&other) noexcept {
        if (this != &other) {
            release();
            state_ = std::move(other.state_);
            owner_ = std::exchange(other.owner_, false);
        }
        return *this;
    }
    Login(const Login &) = delete;
    Login &operator=(const Login &) = delete;
    ~Login() { release(); }

    /// Stops the login; the handler does not run after this returns (from
    /// the handler: no further call starts). Harmless when it has ended.
    void cancel() noexcept {
        if (!state_) {
            return;
        }
        if (owner_) {
            state_->released.store(true);
            onesoidc_login_cancel(state_->raw);
        } else {
            state_->cancel();
        }
    }

    /// Waits for the login's end; its status (Status::Ok: authenticated).
    /// Throws Error from the login's own handler (it would wait for itself).
    Status wait() { return wait(std::chrono::milliseconds::max()); }

    /// Waits up to `timeout` for the login's end; its status, or
    /// Status::Pending when still running.
    Status wait(std::chrono::milliseconds timeout) {
        onesoidc_login *raw = ownHandle();
        const auto ms = timeout.count() < 0 ? 0 : static_cast<std::uint64_t>(timeout.count());
        const int status = onesoidc_login_wait(raw, timeout == std::chrono::milliseconds::max() ? UINT64_MAX : ms);
        if (status == ONESOIDC_INVALID_ARGUMENT) {
            detail::check(status);
        }
        state_->calls.load(std::memory_order_acquire);
        return static_cast<Status>(status);
    }

    /// Waits for the end and returns the person's tokens, or throws Error
    /// with the failure's status and message (Status::Cancelled when the
    /// login was cancelled). The tokens are handed out once: a second get()
    /// after a success throws Error(Status::InvalidArgument).
    Tokens get() {
        const Status status = wait();
        std::lock_guard<std::mutex> lock(state_->mutex);
        if (status != Status::Ok) {
            throw Error(status, state_->failure.empty() ? "the login ended: " + to_string(status) : state_->failure);
        }
        if (!state_->tokens) {
            throw Error(Status::InvalidArgument, "the login's tokens were already taken by get()");
        }
        Tokens tokens = std::move(*state_->tokens);
        state_->tokens.reset();
        return tokens;
    }

private:
    friend class Client;
    friend struct detail::LoginState;

    Login(std::shared_ptr<detail::LoginState> state, bool owner) noexcept
        : state_(std::move(state)), owner_(owner) {}

    /// The C handle, for the owner; an Error for a moved-from login or the
    /// handler's view (which must not wait for itself).
    onesoidc_login *ownHandle() const {
        if (!state_ || !owner_) {
            throw Error(Status::InvalidArgument,
                        state_ ? "wait()/get() called from the login's own handler, it would wait for itself"
                               : "this Login was moved from");
        }
        return state_->raw;
    }

    /// For the owner: frees the C handle (cancelling; waiting for a running
    /// handler unless on its thread), then lets go of the state: a call in
    /// progress keeps it alive until it returns. A view only lets go.
    void release() noexcept {
        if (state_ && owner_) {
            state_->released.store(true);
            onesoidc_login *raw = nullptr;
            {
                std::lock_guard<std::mutex> lock(state_->mutex);
                raw = std::exchange(state_->raw, nullptr);
            }
            onesoidc_login_free(raw);
        }
        state_.reset();
        owner_ = false;
    }

    std::shared_ptr<detail::LoginState> state_;
    bool owner_ = false;
};

inline void detail::LoginState::call(void *userData, const onesoidc_event *event) noexcept {
    const auto kept = static_cast<LoginState *>(userData)->keep();
    if (!kept) {
        return;
    }
    const auto state = std::static_pointer_cast<LoginState>(kept);
    try {
        const Event copy = Event::copy(event);
        if (copy.kind == EventKind::Authenticated || copy.kind == EventKind::Failed) {
            std::lock_guard<std::mutex> lock(state->mutex);
            if (copy.kind == EventKind::Failed) {
                state->failure = copy.message;
            } else {
                onesoidc_tokens *tokens = nullptr;
                if (onesoidc_event_tokens(event, &tokens) == ONESOIDC_OK) {
                    state->tokens.emplace(tokens);
                }
            }
        }
        if (!state->released.load()) {
            Login view(state, false);
            state->handler(view, copy);
        }
    } catch (...) {
        // Nothing may unwind into the library's thread.
    }
    state->calls.fetch_add(1, std::memory_order_release);
}

/// A started login's handler as a std::future (Client::cibaLoginAsync,
/// Client::qrLoginAsync; or by hand: keep the Login, then
/// `std::async(std::launch::async, [&login] { return login.get(); })`).
inline std::future<Tokens> toFuture(Login login) {
    return std::async(std::launch::async, [login = std::move(login)]() mutable { return login.get(); });
}

/// Options of a CIBA (or QR) login; each empty string means none.
///
///   client.cibaLogin("alice", {.bindingMessage = "Kiosk 7"});   // C++20
///   onesoidc::CibaOptions options;                               // C++17
///   options.bindingMessage = "Kiosk 7";
struct CibaOptions {
    /// Shown on the person's phone (at most 120 characters).
    std::string bindingMessage{};
    /// The application's URL (RFC 8707), e.g. Client::applicationUrl's.
    std::string resource{};
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

namespace detail {

/// Lines of a C string of the structs below; NULL is none.
inline std::vector<std::string> linesOf(const char *text) { return text ? lines(text) : std::vector<std::string>(); }

/// Seconds since the epoch from the C API's int64_t (-1: none).
inline std::optional<std::chrono::system_clock::time_point> timeOf(std::int64_t seconds) {
    if (seconds < 0) {
        return std::nullopt;
    }
    return std::chrono::system_clock::time_point(std::chrono::seconds(seconds));
}

inline std::optional<std::string> textOf(const char *text) {
    return text ? std::optional<std::string>(text) : std::nullopt;
}

}  // namespace detail

/// An ID token's validated claims (Client::validateIdToken).
struct IdTokenClaims {
    std::string subject;                              ///< sub: the person
    std::chrono::system_clock::time_point expiresAt;  ///< exp
    std::chrono::system_clock::time_point issuedAt;   ///< iat
    std::vector<std::string> audiences;               ///< aud
    std::string json;                                 ///< every claim, as a JSON object
};

/// The provider's answer to an introspection (Client::introspect); each
/// field as the provider sent it, nullopt (or empty) when it did not.
struct Introspection {
    bool active = false;  ///< usable now
    std::optional<std::chrono::system_clock::time_point> expiresAt;  ///< exp
    std::optional<std::string> subject;                             ///< sub
    std::optional<std::string> scope;                               ///< scope, space-separated
    std::optional<std::string> clientId;                            ///< client_id
    std::vector<std::string> audiences;                             ///< aud
    std::string json;                                               ///< the whole answer, as a JSON object
};

/// Options of a Client.
struct ClientOptions {
    /// DPoP (RFC 9449, ONESOIDC_CLIENT_DPOP): the client's tokens are bound
    /// to the device's DPoP key; use them with Client::authorizeRequest.
    bool dpop = false;
};

/// The headers of one request to an application with an access token
/// (Client::authorizeRequest): set `Authorization`, and `DPoP` when there
/// is a proof.
struct RequestAuthorization {
    std::string authorization;        ///< "DPoP <token>" or "Bearer <token>"
    std::optional<std::string> dpop;  ///< the DPoP proof; nullopt for a bearer token
};

/// A registered device and its provider.
class Client {
public:
    /// The identity from the defaults (ONESOIDC_DEVICE_CONFIG /
    /// ONESOIDC_KEY_DIR, else px-device-identity's places).
    Client() : Client(std::nullopt, std::nullopt) {}

    /// The identity at `deviceYml` and `keyDir`; std::nullopt for either
    /// means its default. An empty path is an Error (Status::InvalidArgument),
    /// not the default. Throws Error (isConfig()) when the files are not
    /// usable.
    Client(const std::optional<std::filesystem::path> &deviceYml,
           const std::optional<std::filesystem::path> &keyDir) {
        onesoidc_client *raw = nullptr;
        detail::check(onesoidc_client_new(detail::pathOrNull(deviceYml, "deviceYml"),
                                          detail::pathOrNull(keyDir, "keyDir"), &raw));
        raw_.reset(raw);
    }

    /// As above, with options (e.g. `{.dpop = true}` for DPoP-bound tokens).
    Client(const std::optional<std::filesystem::path> &deviceYml,
           const std::optional<std::filesystem::path> &keyDir, const ClientOptions &options) {
        onesoidc_client *raw = nullptr;
        const uint32_t flags = options.dpop ? ONESOIDC_CLIENT_DPOP : 0;
        detail::check(onesoidc_client_new_with(detail::pathOrNull(deviceYml, "deviceYml"),
                                               detail::pathOrNull(keyDir, "keyDir"), flags, &raw));
        raw_.reset(raw);
    }

    /// The headers of a `method` request to `url` with `accessToken` (one
    /// this client got): `DPoP <token>` and a fresh proof for a DPoP
    /// client, `Bearer <token>` and no proof otherwise. Make new ones for
    /// every request: a proof is good once.
    RequestAuthorization authorizeRequest(const std::string &accessToken, const std::string &method,
                                          const std::string &url) {
        char *authorization = nullptr;
        char *dpop = nullptr;
        detail::check(onesoidc_authorize_request(raw_.get(), accessToken.c_str(), method.c_str(), url.c_str(),
                                                 &authorization, &dpop));
        RequestAuthorization headers;
        headers.dpop = detail::takeOptional(dpop);
        headers.authorization = detail::take(authorization);
        return headers;
    }

    /// The device's own access token (DeviceAuth::requestDeviceAccessToken).
    std::string deviceToken() {
        char *token = nullptr;
        detail::check(onesoidc_device_token(raw_.get(), &token));
        return detail::take(token);
    }

    /// The device's own tokens: the access token with its type and expiry
    /// (no ID token, no subject).
    Tokens deviceTokens() {
        onesoidc_tokens *raw = nullptr;
        detail::check(onesoidc_device_tokens(raw_.get(), &raw));
        return Tokens(raw);
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
    Tokens cibaLogin(const std::string &username, const CibaOptions &options = {}) {
        CibaRequest request = cibaStart(username, options);
        return cibaWait(request);
    }

    /// Sends a CIBA request (CibaAuth::cibaRequest).
    CibaRequest cibaStart(const std::string &username, const CibaOptions &options = {}) {
        onesoidc_ciba *raw = nullptr;
        detail::check(onesoidc_ciba_start(raw_.get(), username.c_str(), detail::orNull(options.bindingMessage),
                                          detail::orNull(options.resource), &raw));
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

    /// A CIBA login in the background, each step handed to `handler` with
    /// the login itself, on the library's event thread (CibaAuthSignals).
    Login startCibaLogin(const std::string &username, const CibaOptions &options, LoginHandler handler) {
        return start(std::move(handler), [&](onesoidc_event_callback callback, void *userData, onesoidc_login **raw) {
            return onesoidc_ciba_login_start(raw_.get(), username.c_str(), detail::orNull(options.bindingMessage),
                                             detail::orNull(options.resource), callback, userData, raw);
        });
    }
    /// The same with a handler that only takes the event.
    Login startCibaLogin(const std::string &username, const CibaOptions &options, EventHandler handler) {
        return startCibaLogin(username, options, onlyEvents(std::move(handler)));
    }
    /// A CIBA login in the background as a future: its tokens, or the
    /// Error it failed with.
    std::future<Tokens> cibaLoginAsync(const std::string &username, const CibaOptions &options = {}) {
        return toFuture(startCibaLogin(username, options, [](Login &, const Event &) {}));
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
    Tokens qrCibaLogin(QrSession &session, const CibaOptions &options = {}) {
        onesoidc_tokens *raw = nullptr;
        detail::check(onesoidc_qr_ciba_login(raw_.get(), session.get(), detail::orNull(options.bindingMessage),
                                             detail::orNull(options.resource), &raw));
        return Tokens(raw);
    }

    /// A whole QR login in the background (QRAuthSignals).
    Login startQrLogin(const CibaOptions &options, LoginHandler handler) {
        return start(std::move(handler), [&](onesoidc_event_callback callback, void *userData, onesoidc_login **raw) {
            return onesoidc_qr_login_start(raw_.get(), detail::orNull(options.bindingMessage),
                                           detail::orNull(options.resource), callback, userData, raw);
        });
    }
    /// The same with a handler that only takes the event.
    Login startQrLogin(const CibaOptions &options, EventHandler handler) {
        return startQrLogin(options, onlyEvents(std::move(handler)));
    }

    /// Validates an ID token (signature, iss, aud, exp, iat); its claims,
    /// or Error saying which check failed.
    IdTokenClaims validateIdToken(const std::string &idToken) {
        onesoidc_id_token_claims raw{};
        const int status = onesoidc_validate_id_token_claims(raw_.get(), idToken.c_str(), &raw);
        const std::string message = status == ONESOIDC_OK ? std::string() : onesoidc_last_error();
        IdTokenClaims out;
        if (status == ONESOIDC_OK) {
            out.subject = raw.sub ? raw.sub : "";
            out.expiresAt = detail::timeOf(raw.exp).value_or(std::chrono::system_clock::time_point());
            out.issuedAt = detail::timeOf(raw.iat).value_or(std::chrono::system_clock::time_point());
            out.audiences = detail::linesOf(raw.aud);
            out.json = raw.json ? raw.json : "";
        }
        onesoidc_id_token_claims_clear(&raw);
        if (status != ONESOIDC_OK) {
            throw Error(status, message);
        }
        return out;
    }

    /// Asks the provider whether a token is active (RFC 7662).
    Introspection introspect(const std::string &token) {
        onesoidc_introspection raw{};
        const int status = onesoidc_introspect_fields(raw_.get(), token.c_str(), &raw);
        const std::string message = status == ONESOIDC_OK ? std::string() : onesoidc_last_error();
        Introspection out;
        if (status == ONESOIDC_OK) {
            out.active = raw.active;
            out.expiresAt = detail::timeOf(raw.exp);
            out.subject = detail::textOf(raw.sub);
            out.scope = detail::textOf(raw.scope);
            out.clientId = detail::textOf(raw.client_id);
            out.audiences = detail::linesOf(raw.aud);
            out.json = raw.json ? raw.json : "";
        }
        onesoidc_introspection_clear(&raw);
        if (status != ONESOIDC_OK) {
            throw Error(status, message);
        }
        return out;
    }

    void revoke(const std::string &token) { detail::check(onesoidc_revoke(raw_.get(), token.c_str())); }

    onesoidc_client *get() const noexcept { return raw_.get(); }

private:
    static LoginHandler onlyEvents(EventHandler handler) {
        return [handler = std::move(handler)](Login &, const Event &event) { handler(event); };
    }

    /// Starts a login with `startC` (a C start function given the callback,
    /// its user_data and the out-handle).
    template <typename Start>
    Login start(LoginHandler handler, Start startC) {
        auto state = std::make_shared<detail::LoginState>(std::move(handler));
        onesoidc_login *raw = nullptr;
        detail::check(startC(&detail::LoginState::call, state.get(), &raw));
        bool cancelled = false;
        {
            // Events may already run; a cancel from the handler's view
            // before this point raised the flag only.
            std::lock_guard<std::mutex> lock(state->mutex);
            state->raw = raw;
            cancelled = state->released.load();
        }
        if (cancelled) {
            onesoidc_login_cancel(raw);
        }
        return Login(std::move(state), true);
    }

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
