// The C++ layer's API (onesoidc.hpp) against `onesoidc dev-idp`: every
// typed result and its error paths. `cargo xtask test` runs it under
// ASan+UBSan and TSan; the identity comes from ONESOIDC_DEVICE_CONFIG and
// ONESOIDC_KEY_DIR, the person is "alice". The last line is
// "N passed, M failed"; the exit status is 0 only when nothing failed.
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <vector>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>

#include <onesoidc.hpp>

namespace {

int passed = 0;
int failed = 0;

void check(bool ok, const char *what, int line) {
    if (ok) {
        ++passed;
    } else {
        ++failed;
        std::fprintf(stderr, "FAIL line %d: %s\n", line, what);
    }
}
#define CHECK(cond) check((cond), #cond, __LINE__)

/// Runs `call`; the Error it threw, or nullopt when it threw none.
template <typename Call>
std::optional<onesoidc::Error> errorOf(Call call) {
    try {
        call();
    } catch (const onesoidc::Error &error) {
        return error;
    }
    return std::nullopt;
}

bool contains(const std::string &text, const std::string &needle) { return text.find(needle) != std::string::npos; }

void namesAndStatuses() {
    CHECK(onesoidc::to_string(onesoidc::Status::Denied) == "denied");
    CHECK(onesoidc::to_string(onesoidc::Status::Config) == "config");
    CHECK(onesoidc::to_string(static_cast<onesoidc::Status>(77)) == "status 77");
    CHECK(onesoidc::to_string(onesoidc::EventKind::Authenticated) == "AUTHENTICATED");
    CHECK(onesoidc::to_string(onesoidc::EventKind::QrScanned) == "QR_SCANNED");
    const onesoidc::Error config(ONESOIDC_CONFIG, "x");
    CHECK(config.isConfig() && !config.isNetwork() && config.code() == 10);
}

void paths() {
    const auto missing = errorOf([] { onesoidc::Client("/nonexistent/onesoidc/device.yml", std::nullopt); });
    CHECK(missing && missing->isConfig() && contains(missing->what(), "/nonexistent/onesoidc/device.yml"));
    const auto empty = errorOf([] { onesoidc::Client(std::filesystem::path(), std::nullopt); });
    CHECK(empty && empty->status() == onesoidc::Status::InvalidArgument && contains(empty->what(), "deviceYml"));
    const auto emptyKeys = errorOf([] { onesoidc::Client(std::nullopt, std::filesystem::path()); });
    CHECK(emptyKeys && emptyKeys->status() == onesoidc::Status::InvalidArgument);
    const auto field = errorOf([] { onesoidc::deviceConfigField("id", std::filesystem::path()); });
    CHECK(field && field->status() == onesoidc::Status::InvalidArgument);
    CHECK(onesoidc::deviceConfigField("id").has_value());
}

void deviceTokens(onesoidc::Client &client) {
    const onesoidc::Tokens device = client.deviceTokens();
    CHECK(device.accessToken().size() > 20);
    CHECK(device.tokenType() == "Bearer" || device.tokenType() == "bearer");
    CHECK(device.expiresAt() && *device.expiresAt() > std::chrono::system_clock::now());
    CHECK(!device.idToken() && !device.subject());
    CHECK(!client.deviceToken().empty());
}

void dpop() {
    onesoidc::Client bearer;
    const onesoidc::RequestAuthorization plain = bearer.authorizeRequest("tok", "GET", "https://app.example/me");
    CHECK(plain.authorization == "Bearer tok" && !plain.dpop);
    const auto bad = errorOf([&] { bearer.authorizeRequest("tok", "GET", "no url"); });
    CHECK(bad && bad->status() == onesoidc::Status::InvalidArgument && contains(bad->what(), "url"));

    onesoidc::ClientOptions options;
    options.dpop = true;
    onesoidc::Client bound(std::nullopt, std::nullopt, options);
    const onesoidc::Tokens tokens = bound.deviceTokens();
    CHECK(tokens.tokenType() == "DPoP");
    const onesoidc::RequestAuthorization first = bound.authorizeRequest(tokens.accessToken(), "POST", "https://app.example/x");
    const onesoidc::RequestAuthorization second = bound.authorizeRequest(tokens.accessToken(), "POST", "https://app.example/x");
    CHECK(first.authorization == "DPoP " + tokens.accessToken());
    CHECK(first.dpop && second.dpop && *first.dpop != *second.dpop);
}

void results(onesoidc::Client &client) {
    // get(): the tokens once; what the handler wrote is visible after it.
    int events = 0;
    bool sawLoginInHandler = false;
    onesoidc::Login login = client.startCibaLogin(
        "alice", {"C++ test"}, [&](onesoidc::Login &self, const onesoidc::Event &event) {
            ++events;
            if (event.kind == onesoidc::EventKind::Started) {
                // The handler's view refuses to wait for itself.
                const auto own = errorOf([&] { self.wait(); });
                sawLoginInHandler = own && own->status() == onesoidc::Status::InvalidArgument;
            }
        });
    const onesoidc::Tokens tokens = login.get();
    CHECK(tokens.subject() == std::optional<std::string>("alice"));
    CHECK(events >= 2 && sawLoginInHandler);
    CHECK(login.wait() == onesoidc::Status::Ok);
    const auto again = errorOf([&] { login.get(); });
    CHECK(again && again->status() == onesoidc::Status::InvalidArgument);

    // Cancelled from its own handler, on the first event.
    onesoidc::Login cancelled = client.startCibaLogin(
        "alice", {}, [](onesoidc::Login &self, const onesoidc::Event &) { self.cancel(); });
    CHECK(cancelled.wait() == onesoidc::Status::Cancelled);
    const auto why = errorOf([&] { cancelled.get(); });
    CHECK(why && why->status() == onesoidc::Status::Cancelled);

    // A moved-from login is an Error, not a crash.
    onesoidc::Login moved = std::move(cancelled);
    const auto gone = errorOf([&] { cancelled.wait(); });
    CHECK(gone && gone->status() == onesoidc::Status::InvalidArgument);

    // The future form, and a QR login with the event-only handler.
    std::future<onesoidc::Tokens> future = client.cibaLoginAsync("alice", {"C++ future"});
    CHECK(future.get().subject() == std::optional<std::string>("alice"));
    std::string url;
    onesoidc::Login qr = client.startQrLogin({}, [&](const onesoidc::Event &event) {
        if (event.kind == onesoidc::EventKind::QrSessionCreated) {
            url = event.url;
        }
    });
    CHECK(qr.get().subject() == std::optional<std::string>("alice"));
    CHECK(!url.empty());
}

void validation(onesoidc::Client &client) {
    const onesoidc::Tokens tokens = client.cibaLogin("alice");
    const onesoidc::IdTokenClaims claims = client.validateIdToken(tokens.idToken().value_or(""));
    CHECK(claims.subject == "alice");
    CHECK(claims.expiresAt > claims.issuedAt);
    CHECK(!claims.audiences.empty());
    CHECK(contains(claims.json, "\"sub\""));
    const auto bad = errorOf([&] { client.validateIdToken("not.a.token"); });
    CHECK(bad && bad->status() == onesoidc::Status::Error);

    const onesoidc::Introspection active = client.introspect(tokens.accessToken());
    CHECK(active.active);
    CHECK(active.expiresAt && *active.expiresAt > std::chrono::system_clock::now());
    CHECK(active.clientId.has_value());
    CHECK(contains(active.json, "\"active\":true"));
    client.revoke(tokens.accessToken());
    const onesoidc::Introspection revoked = client.introspect(tokens.accessToken());
    CHECK(!revoked.active && !revoked.subject);
}

void subscriptions(onesoidc::Client &client) {
    onesoidc::Registry registry;
    onesoidc::Manager manager = registry.create(client, "ciba_user", onesoidc::Refresh::User);
    std::vector<onesoidc::EventKind> seen;
    std::mutex mutex;
    std::condition_variable changed;
    std::optional<onesoidc::Subscription> subscription = manager.subscribe([&](const onesoidc::Event &event) {
        std::lock_guard<std::mutex> lock(mutex);
        seen.push_back(event.kind);
        changed.notify_all();
    });
    manager.store(client.cibaLogin("alice"));
    manager.clear();
    {
        std::unique_lock<std::mutex> lock(mutex);
        changed.wait_for(lock, std::chrono::seconds(10), [&] {
            return !seen.empty() && seen.back() == onesoidc::EventKind::TokenCleared;
        });
        CHECK(seen.size() == 2 && seen.front() == onesoidc::EventKind::TokenStored &&
              seen.back() == onesoidc::EventKind::TokenCleared);
    }
    subscription.reset();
}

}  // namespace

int main() {
    try {
        namesAndStatuses();
        paths();
        onesoidc::Client client;
        deviceTokens(client);
        dpop();
        results(client);
        validation(client);
        subscriptions(client);
    } catch (const onesoidc::Error &error) {
        ++failed;
        std::fprintf(stderr, "FAIL: uncaught Error %s: %s\n", onesoidc::to_string(error.status()).c_str(),
                     error.what());
    }
    std::printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
