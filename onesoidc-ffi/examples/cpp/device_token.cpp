// The device's own access token (the guide's "Device token"): loads the
// identity (ONESOIDC_DEVICE_CONFIG / ONESOIDC_KEY_DIR, else
// px-device-identity's places) and asks the provider.
#include <chrono>
#include <iostream>

#include <onesoidc.hpp>

int main() {
    try {
        onesoidc::Client client;
        const onesoidc::Tokens device = client.deviceTokens();
        const auto left = std::chrono::duration_cast<std::chrono::seconds>(
            device.expiresAt().value_or(std::chrono::system_clock::now()) - std::chrono::system_clock::now());
        std::cout << "device access token: " << device.accessToken().size() << " characters, "
                  << device.tokenType() << ", expires in " << left.count() << " s\n";
    } catch (const onesoidc::Error &error) {
        std::cerr << "onesoidc: " << onesoidc::to_string(error.status()) << ": " << error.what() << '\n';
        return error.isConfig() ? 2 : 1;
    }
}
