// A CIBA login in the background with an event handler (the guide's
// "CIBA with signals"): each step on the library's event thread, the
// result from get() on this one. The handler also gets the login, e.g. to
// cancel() it.
#include <iostream>
#include <mutex>

#include <onesoidc.hpp>

int main() {
    try {
        onesoidc::Client client;
        std::mutex out;  // the handler prints from another thread
        onesoidc::Login login = client.startCibaLogin(
            "alice", {"Kiosk 7"}, [&](onesoidc::Login &, const onesoidc::Event &event) {
                std::lock_guard<std::mutex> lock(out);
                std::cout << onesoidc::to_string(event.kind) << ": " << event.message << '\n';
            });
        const onesoidc::Tokens tokens = login.get();  // after the last handler call
        std::lock_guard<std::mutex> lock(out);
        std::cout << "authenticated " << tokens.subject().value_or("?") << '\n';
    } catch (const onesoidc::Error &error) {
        std::cerr << "onesoidc: " << onesoidc::to_string(error.status()) << ": " << error.what() << '\n';
        return 1;
    }
}
