// Lifetimes of the C++ layer's Login and Subscription: each destroyed,
// reset or reassigned from inside its own handler, then the handler
// touches what it captured. Before the handler state was shared with the
// running callback, AddressSanitizer reported heap-use-after-free here.
// `cargo xtask test` runs each variant under ASan+UBSan (and TSan) against
// `onesoidc dev-idp`:
//
//   test_lifetimes VARIANT COUNT
//
//   login-reset             COUNT CIBA logins at once; each handler resets its
//                           own std::optional<Login> on the last event
//   login-reassign          the same, assigning a new login instead
//   subscription-reset      COUNT subscriptions to one manager; each handler
//                           resets its own std::optional<Subscription>
//   subscription-reassign   the same, assigning a new subscription instead
//
// The identity comes from ONESOIDC_DEVICE_CONFIG and ONESOIDC_KEY_DIR. The
// last line is "VARIANT: COUNT of COUNT handlers ran to the end"; the exit
// status is 0 only then.
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <optional>
#include <string>

#include <onesoidc.hpp>

namespace {

/// Counts handlers that ran to the end; main waits for all of them.
class Countdown {
public:
    void arrive() {
        std::lock_guard<std::mutex> lock(mutex_);
        ++arrived_;
        changed_.notify_all();
    }
    /// How many arrived when `wanted` did or `limit` passed.
    int waitFor(int wanted, std::chrono::seconds limit) {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait_for(lock, limit, [&] { return arrived_ >= wanted; });
        return arrived_;
    }

private:
    std::mutex mutex_;
    std::condition_variable changed_;
    int arrived_ = 0;
};

/// One handle, and the lock that orders its creation before its handler's
/// use of it (events may come before start returns).
template <typename Handle>
struct Slot {
    std::mutex mutex;
    std::optional<Handle> handle;
};

/// Reads every byte of what the handler captured by value: on freed memory
/// AddressSanitizer stops the program here.
int touch(const std::string &captured) {
    int sum = 0;
    for (const char c : captured) {
        sum += c;
    }
    return sum;
}

const std::string kCaptured(256, 'x');

int logins(onesoidc::Client &client, int count, bool reassign) {
    Countdown done;
    std::deque<Slot<onesoidc::Login>> slots(static_cast<std::size_t>(count));
    for (auto &slot : slots) {
        std::lock_guard<std::mutex> lock(slot.mutex);
        slot.handle.emplace(client.startCibaLogin(
            "alice", {}, [&client, &slot, &done, reassign, captured = kCaptured](const onesoidc::Event &event) {
                if (!event.isLast()) {
                    return;
                }
                {
                    std::lock_guard<std::mutex> lock(slot.mutex);
                    if (reassign) {
                        slot.handle = client.startCibaLogin("alice", {}, [](const onesoidc::Event &) {});
                    } else {
                        slot.handle.reset();
                    }
                }
                if (touch(captured) == 'x' * 256 && event.kind == onesoidc::EventKind::Authenticated) {
                    done.arrive();
                }
            }));
    }
    const int arrived = done.waitFor(count, std::chrono::seconds(90));
    slots.clear();  // the reassigned logins, cancelled from this thread
    return arrived;
}

int subscriptions(onesoidc::Client &client, int count, bool reassign) {
    onesoidc::Registry registry;
    onesoidc::Manager manager = registry.create(client, "ciba_user", onesoidc::Refresh::User);
    onesoidc::Tokens tokens = client.cibaLogin("alice");
    Countdown done;
    std::deque<Slot<onesoidc::Subscription>> slots(static_cast<std::size_t>(count));
    for (auto &slot : slots) {
        std::lock_guard<std::mutex> lock(slot.mutex);
        slot.handle.emplace(manager.subscribe(
            [&manager, &slot, &done, reassign, captured = kCaptured](const onesoidc::Event &event) {
                if (event.kind != onesoidc::EventKind::TokenStored) {
                    return;
                }
                {
                    std::lock_guard<std::mutex> lock(slot.mutex);
                    if (reassign) {
                        slot.handle = manager.subscribe([](const onesoidc::Event &) {});
                    } else {
                        slot.handle.reset();
                    }
                }
                if (touch(captured) == 'x' * 256) {
                    done.arrive();
                }
            }));
    }
    manager.store(tokens);
    const int arrived = done.waitFor(count, std::chrono::seconds(60));
    slots.clear();
    return arrived;
}

}  // namespace

int main(int argc, char **argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s login-reset|login-reassign|subscription-reset|subscription-reassign COUNT\n",
                     argv[0]);
        return 2;
    }
    const std::string variant = argv[1];
    const int count = std::atoi(argv[2]);
    try {
        onesoidc::Client client;
        int arrived = -1;
        if (variant == "login-reset" || variant == "login-reassign") {
            arrived = logins(client, count, variant == "login-reassign");
        } else if (variant == "subscription-reset" || variant == "subscription-reassign") {
            arrived = subscriptions(client, count, variant == "subscription-reassign");
        } else {
            std::fprintf(stderr, "unknown variant %s\n", variant.c_str());
            return 2;
        }
        std::printf("%s: %d of %d handlers ran to the end\n", variant.c_str(), arrived, count);
        return arrived == count ? 0 : 1;
    } catch (const onesoidc::Error &failure) {
        std::fprintf(stderr, "%s: error %d: %s\n", variant.c_str(), failure.code(), failure.what());
        return 1;
    }
}
