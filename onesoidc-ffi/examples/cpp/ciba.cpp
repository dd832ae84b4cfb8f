// A CIBA login, blocking (the guide's "CIBA"): the request, then polling
// until the person answers on their phone; each failure has its own test.
#include <iostream>

#include <onesoidc.hpp>

int main() {
    try {
        onesoidc::Client client;
        onesoidc::CibaRequest request = client.cibaStart("alice", {"Kiosk 7"});
        std::cout << "auth_req_id " << request.authReqId() << ", " << request.expiresIn().count()
                  << " s to answer\n";
        const onesoidc::Tokens tokens = client.cibaWait(request);
        std::cout << "approved: authenticated " << tokens.subject().value_or("?") << '\n';
    } catch (const onesoidc::Error &error) {
        if (error.isDenied()) {
            std::cerr << "denied on the phone\n";
        } else if (error.isExpired()) {
            std::cerr << "nobody answered in time\n";
        } else if (error.isNetwork()) {
            std::cerr << "the provider cannot be reached, try again later: " << error.what() << '\n';
        } else {
            std::cerr << "onesoidc: " << onesoidc::to_string(error.status()) << ": " << error.what() << '\n';
        }
        return error.code();
    }
}
