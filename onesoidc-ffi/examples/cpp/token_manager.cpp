// Token managers (the guide's "Token manager"): the device's, refreshed
// by itself, and a person's, fed by a login; their events from a
// subscription.
#include <future>
#include <iostream>
#include <mutex>
#include <utility>

#include <onesoidc.hpp>

int main() {
    try {
        onesoidc::Client client;
        onesoidc::Registry registry;
        onesoidc::Manager device = registry.create(client, "device", onesoidc::Refresh::Device);
        onesoidc::Manager user = registry.create(client, "ciba_user", onesoidc::Refresh::User);
        std::mutex out;
        std::promise<void> refreshed;
        bool seen = false;  // guarded by `out`
        onesoidc::Subscription events = device.subscribe([&](const onesoidc::Event &event) {
            std::lock_guard<std::mutex> lock(out);
            std::cout << "device: " << onesoidc::to_string(event.kind) << ": " << event.message << '\n';
            if (event.kind == onesoidc::EventKind::TokenRefreshed && !std::exchange(seen, true)) {
                refreshed.set_value();
            }
        });
        device.forceRefresh();
        refreshed.get_future().wait();
        user.store(client.cibaLogin("alice"));
        std::lock_guard<std::mutex> lock(out);
        std::cout << "device token: " << device.accessToken().size() << " characters\n";
        std::cout << "ciba_user token: " << user.accessToken().size() << " characters\n";
        for (const std::string &name : registry.names()) {
            std::cout << "manager " << name << '\n';
        }
    } catch (const onesoidc::Error &error) {
        std::cerr << "onesoidc: " << onesoidc::to_string(error.status()) << ": " << error.what() << '\n';
        return 1;
    }
}
