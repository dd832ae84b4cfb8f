// A QR login with an event handler (the guide's "QR login"): the code to
// show, the scan, then CIBA for the person who scanned.
#include <iostream>
#include <mutex>

#include <onesoidc.hpp>

int main() {
    try {
        onesoidc::Client client;
        std::mutex out;
        onesoidc::Login login =
            client.startQrLogin({"Kiosk 7"}, [&](const onesoidc::Event &event) {
                std::lock_guard<std::mutex> lock(out);
                std::cout << onesoidc::to_string(event.kind) << ": " << event.message << '\n';
                if (event.kind == onesoidc::EventKind::QrSessionCreated) {
                    std::cout << "scan this code:\n" << onesoidc::renderQr(event.url) << '\n';
                }
            });
        const onesoidc::Tokens tokens = login.get();
        std::lock_guard<std::mutex> lock(out);
        std::cout << "authenticated " << tokens.subject().value_or("?") << '\n';
    } catch (const onesoidc::Error &error) {
        std::cerr << "onesoidc: " << onesoidc::to_string(error.status()) << ": " << error.what() << '\n';
        return 1;
    }
}
