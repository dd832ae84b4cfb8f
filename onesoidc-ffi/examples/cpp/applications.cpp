// Well-known applications (the guide's "Applications"): the list, one
// application's URL, and a login for that application (its URL as the
// CIBA resource).
#include <iostream>

#include <onesoidc.hpp>

int main() {
    try {
        onesoidc::Client client;
        for (const onesoidc::Application &app : client.applications()) {
            std::cout << "application " << app.clientIdentifier << ": " << app.name << " at " << app.url << '\n';
        }
        const std::string url = client.applicationUrl("vhh-server");
        std::cout << "vhh-server: " << url << '\n';
        const onesoidc::Tokens tokens = client.cibaLogin("alice", {"Log in to VHH", url});
        std::cout << "authenticated " << tokens.subject().value_or("?") << " for " << url << '\n';
    } catch (const onesoidc::Error &error) {
        std::cerr << "onesoidc: " << onesoidc::to_string(error.status()) << ": " << error.what() << '\n';
        return 1;
    }
}
