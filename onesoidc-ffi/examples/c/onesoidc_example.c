/*
 * onesoidc from C: one program with a mode per section of the original
 * library's guide.
 *
 *   onesoidc_example MODE
 *
 *   version        the library's version
 *   device-config  read device.yml (DeviceConfig::loadFromFile)
 *   device-token   the device's access token (DeviceAuth::requestDeviceAccessToken)
 *   well-known     an application's URL, then a login for it (ApplicationsWellKnown)
 *   ciba           a CIBA request, then its status until answered (CibaAuth::cibaRequest / checkCibaStatus)
 *   ciba-events    a CIBA login reporting each step to a callback (CibaAuthSignals)
 *   qr             a QR code, the scan, then CIBA (QRAuth)
 *   qr-events      a QR login reporting each step to a callback (QRAuthSignals)
 *   token-manager  token managers in a registry (TokenManagerRegistry, tokensRefreshed)
 *
 * The identity is px-device-identity's, or ONESOIDC_DEVICE_CONFIG and
 * ONESOIDC_KEY_DIR. The person is "alice" (ONESOIDC_EXAMPLE_USER overrides).
 * Exit status: the last onesoidc status (0 when everything worked).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <onesoidc.h>

/* Prints the failure of `what` and returns its status. */
static int fail(const char *what, int status) {
    fprintf(stderr, "%s failed (status %d): %s\n", what, status, onesoidc_last_error());
    return status;
}

static const char *user(void) {
    const char *name = getenv("ONESOIDC_EXAMPLE_USER");
    return name && *name ? name : "alice";
}

static const char *kind_name(int kind) {
    switch (kind) {
    case ONESOIDC_EVENT_STARTED: return "STARTED";
    case ONESOIDC_EVENT_WAITING_FOR_AUTHORIZATION: return "WAITING_FOR_AUTHORIZATION";
    case ONESOIDC_EVENT_AUTHENTICATED: return "AUTHENTICATED";
    case ONESOIDC_EVENT_FAILED: return "FAILED";
    case ONESOIDC_EVENT_QR_SESSION_CREATED: return "QR_SESSION_CREATED";
    case ONESOIDC_EVENT_QR_WAITING_FOR_SCAN: return "QR_WAITING_FOR_SCAN";
    case ONESOIDC_EVENT_QR_SCANNED: return "QR_SCANNED";
    case ONESOIDC_EVENT_TOKEN_REFRESHED: return "TOKEN_REFRESHED";
    case ONESOIDC_EVENT_TOKEN_STORED: return "TOKEN_STORED";
    case ONESOIDC_EVENT_TOKEN_REFRESH_FAILED: return "TOKEN_REFRESH_FAILED";
    case ONESOIDC_EVENT_TOKEN_EXPIRED: return "TOKEN_EXPIRED";
    case ONESOIDC_EVENT_TOKEN_CLEARED: return "TOKEN_CLEARED";
    default: return "OTHER";
    }
}

/* Prints "authenticated SUBJECT (token expires in N s)" for a login's tokens. */
static void print_login(const onesoidc_tokens *tokens) {
    char *subject = NULL;
    onesoidc_tokens_subject(tokens, &subject);
    long long expires_at = (long long)onesoidc_tokens_expires_at(tokens);
    printf("authenticated %s (token expires in %lld s, refresh token: %s)\n",
           subject ? subject : "(no ID token)",
           expires_at < 0 ? -1LL : expires_at - (long long)time(NULL),
           onesoidc_tokens_has_refresh_token(tokens) ? "yes" : "no");
    onesoidc_string_free(subject);
}

static int mode_version(void) {
    printf("onesoidc %s\n", onesoidc_version());
    return 0;
}

static int mode_device_config(void) {
    const char *fields[] = {"id", "client_id", "issuer", "key_type", "title", "role"};
    const char *labels[] = {"device id", "client id", "issuer", "key type", "title", "role"};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        char *value = NULL;
        int status = onesoidc_device_config_field(NULL, fields[i], &value);
        if (status != ONESOIDC_OK) {
            return fail("onesoidc_device_config_field", status);
        }
        printf("%-10s %s\n", labels[i], value ? value : "(none)");
        onesoidc_string_free(value);
    }
    return 0;
}

static int mode_device_token(onesoidc_client *client) {
    char *token = NULL;
    int status = onesoidc_device_token(client, &token);
    if (status != ONESOIDC_OK) {
        return fail("onesoidc_device_token", status);
    }
    printf("device access token: %.12s... (%zu characters)\n", token, strlen(token));
    onesoidc_string_free(token); /* zeroes it */
    return 0;
}

static int mode_well_known(onesoidc_client *client) {
    char *list = NULL;
    int status = onesoidc_applications(client, &list);
    if (status != ONESOIDC_OK) {
        return fail("onesoidc_applications", status);
    }
    printf("applications (identifier, URL, name):\n%s", list);
    onesoidc_string_free(list);

    char *url = NULL;
    status = onesoidc_application_url(client, "vhh-server", &url);
    if (status != ONESOIDC_OK) {
        return fail("onesoidc_application_url", status);
    }
    printf("vhh-server is at %s; asking %s to log in to it...\n", url, user());
    onesoidc_ciba *request = NULL;
    status = onesoidc_ciba_start(client, user(), "Log in to VHH", url, &request);
    onesoidc_string_free(url);
    if (status != ONESOIDC_OK) {
        return fail("onesoidc_ciba_start", status);
    }
    onesoidc_tokens *tokens = NULL;
    status = onesoidc_ciba_wait(client, request, &tokens);
    onesoidc_ciba_free(request);
    if (status != ONESOIDC_OK) {
        return fail("onesoidc_ciba_wait", status);
    }
    print_login(tokens);
    onesoidc_tokens_free(tokens);
    return 0;
}

static int mode_ciba(onesoidc_client *client) {
    onesoidc_ciba *request = NULL;
    int status = onesoidc_ciba_start(client, user(), "Example login", NULL, &request);
    if (status != ONESOIDC_OK) {
        return fail("onesoidc_ciba_start", status);
    }
    char *id = NULL;
    onesoidc_ciba_auth_req_id(request, &id);
    printf("asked %s to approve: auth_req_id %s, %llu s to answer\n", user(), id,
           (unsigned long long)onesoidc_ciba_expires_in(request));
    onesoidc_string_free(id);
    onesoidc_tokens *tokens = NULL;
    for (;;) {
        /* The protocol's pause between checks (asking sooner is slow_down). */
        struct timespec pause = {(time_t)onesoidc_ciba_interval(request), 0};
        nanosleep(&pause, NULL);
        status = onesoidc_ciba_check(client, request, &tokens);
        if (status != ONESOIDC_PENDING) {
            break;
        }
        printf("status: pending\n");
    }
    onesoidc_ciba_free(request);
    if (status != ONESOIDC_OK) {
        return fail("onesoidc_ciba_check", status);
    }
    printf("status: approved\n");
    print_login(tokens);
    onesoidc_tokens_free(tokens);
    return 0;
}

/* A started login's callback: runs on the library's event thread. */
static void print_event(void *user_data, const onesoidc_event *event) {
    (void)user_data;
    int kind = onesoidc_event_kind(event);
    printf("%-26s %s\n", kind_name(kind), onesoidc_event_message(event));
    if (kind == ONESOIDC_EVENT_QR_SESSION_CREATED) {
        char *code = NULL;
        if (onesoidc_qr_render(onesoidc_event_url(event), ONESOIDC_QR_ASCII, &code) == ONESOIDC_OK) {
            printf("%s", code);
        }
        onesoidc_string_free(code);
    }
    if (kind == ONESOIDC_EVENT_AUTHENTICATED) {
        onesoidc_tokens *tokens = NULL;
        if (onesoidc_event_tokens(event, &tokens) == ONESOIDC_OK) {
            print_login(tokens);
        }
        onesoidc_tokens_free(tokens);
    }
    fflush(stdout);
}

/* Waits for a started login, prints how it ended, frees it. */
static int finish_login(onesoidc_login *login) {
    int status = onesoidc_login_wait(login, 90 * 1000);
    onesoidc_login_free(login); /* cancels it if it is still running */
    printf("finished with status %d\n", status);
    return status;
}

static int mode_ciba_events(onesoidc_client *client) {
    onesoidc_login *login = NULL;
    int status = onesoidc_ciba_login_start(client, user(), "Example login", NULL, print_event,
                                           NULL, &login);
    if (status != ONESOIDC_OK) {
        return fail("onesoidc_ciba_login_start", status);
    }
    return finish_login(login);
}

static int mode_qr(onesoidc_client *client) {
    onesoidc_qr_session *session = NULL;
    int status = onesoidc_qr_create(client, &session);
    if (status != ONESOIDC_OK) {
        return fail("onesoidc_qr_create", status);
    }
    char *url = NULL, *code = NULL;
    onesoidc_qr_session_url(session, &url);
    status = onesoidc_qr_render(url, ONESOIDC_QR_UNICODE, &code);
    if (status == ONESOIDC_OK) {
        printf("scan this code within %llu s (%s):\n%s",
               (unsigned long long)onesoidc_qr_session_expires_in(session), url, code);
        fflush(stdout);
    }
    onesoidc_string_free(code);
    onesoidc_string_free(url);
    if (status != ONESOIDC_OK) {
        onesoidc_qr_session_free(session);
        return fail("onesoidc_qr_render", status);
    }
    status = onesoidc_qr_wait_for_scan(client, session);
    if (status != ONESOIDC_OK) {
        onesoidc_qr_session_free(session);
        return fail("onesoidc_qr_wait_for_scan", status);
    }
    printf("scanned; asking the person to approve...\n");
    onesoidc_tokens *tokens = NULL;
    status = onesoidc_qr_ciba_login(client, session, "Example QR login", NULL, &tokens);
    onesoidc_qr_session_free(session);
    if (status != ONESOIDC_OK) {
        return fail("onesoidc_qr_ciba_login", status);
    }
    print_login(tokens);
    onesoidc_tokens_free(tokens);
    return 0;
}

static int mode_qr_events(onesoidc_client *client) {
    onesoidc_login *login = NULL;
    int status = onesoidc_qr_login_start(client, "Example QR login", NULL, print_event, NULL,
                                         &login);
    if (status != ONESOIDC_OK) {
        return fail("onesoidc_qr_login_start", status);
    }
    return finish_login(login);
}

/* Counts a manager's refreshes, so the main thread can wait for one. */
struct refreshes {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int count;
};

static void on_manager_event(void *user_data, const onesoidc_event *event) {
    struct refreshes *seen = user_data;
    printf("%-26s %s\n", kind_name(onesoidc_event_kind(event)), onesoidc_event_message(event));
    fflush(stdout);
    if (onesoidc_event_kind(event) == ONESOIDC_EVENT_TOKEN_REFRESHED) {
        pthread_mutex_lock(&seen->lock);
        seen->count++;
        pthread_cond_broadcast(&seen->changed);
        pthread_mutex_unlock(&seen->lock);
    }
}

/* Waits up to 30 s for at least `count` refreshes. */
static int wait_for_refreshes(struct refreshes *seen, int count) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 30;
    int rc = 0;
    pthread_mutex_lock(&seen->lock);
    while (seen->count < count && rc != ETIMEDOUT) {
        rc = pthread_cond_timedwait(&seen->changed, &seen->lock, &deadline);
    }
    int reached = seen->count >= count;
    pthread_mutex_unlock(&seen->lock);
    return reached;
}

static int mode_token_manager(onesoidc_client *client) {
    struct refreshes seen = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    onesoidc_registry *registry = NULL;
    onesoidc_manager *device = NULL, *person = NULL;
    onesoidc_subscription *device_events = NULL, *person_events = NULL;
    onesoidc_ciba *request = NULL;
    onesoidc_tokens *tokens = NULL;
    char *token = NULL, *names = NULL, *state = NULL;
    int status = onesoidc_registry_new(&registry);
    if (status != ONESOIDC_OK) {
        return fail("onesoidc_registry_new", status);
    }
    /* The device's manager: fetches on first use, refreshes ahead of expiry. */
    status = onesoidc_registry_create(registry, client, "device", ONESOIDC_REFRESH_DEVICE, &device);
    if (status == ONESOIDC_OK) {
        status = onesoidc_manager_subscribe(device, on_manager_event, &seen, &device_events);
    }
    if (status == ONESOIDC_OK) {
        status = onesoidc_manager_access_token(device, &token);
    }
    if (status != ONESOIDC_OK) {
        fail("the device manager", status);
        goto done;
    }
    printf("device token from the manager: %.12s...\n", token);
    if (!wait_for_refreshes(&seen, 1)) {
        fprintf(stderr, "no TOKEN_REFRESHED event within 30 s\n");
        status = ONESOIDC_ERROR;
        goto done;
    }
    /* A person's manager: stores a CIBA login's tokens, refreshes them with
       the refresh token (the original ciba_user manager). */
    status = onesoidc_registry_create(registry, client, "ciba_user", ONESOIDC_REFRESH_USER, &person);
    if (status == ONESOIDC_OK) {
        status = onesoidc_manager_subscribe(person, on_manager_event, &seen, &person_events);
    }
    if (status == ONESOIDC_OK) {
        status = onesoidc_ciba_start(client, user(), "Example login", NULL, &request);
    }
    if (status == ONESOIDC_OK) {
        status = onesoidc_ciba_wait(client, request, &tokens);
    }
    if (status == ONESOIDC_OK) {
        status = onesoidc_manager_store(person, tokens);
    }
    if (status == ONESOIDC_OK) {
        status = onesoidc_manager_force_refresh(person); /* forceRenewToken */
    }
    if (status != ONESOIDC_OK) {
        fail("the ciba_user manager", status);
        goto done;
    }
    if (!wait_for_refreshes(&seen, 2)) {
        fprintf(stderr, "no second TOKEN_REFRESHED event within 30 s\n");
        status = ONESOIDC_ERROR;
        goto done;
    }
    onesoidc_registry_names(registry, &names);
    onesoidc_manager_state(person, &state);
    printf("managers:\n%sciba_user: %s\n", names, state);
done:
    onesoidc_string_free(state);
    onesoidc_string_free(names);
    onesoidc_string_free(token);
    onesoidc_tokens_free(tokens);
    onesoidc_ciba_free(request);
    onesoidc_subscription_free(person_events); /* no callback after this */
    onesoidc_subscription_free(device_events);
    onesoidc_manager_free(person);
    onesoidc_manager_free(device);
    onesoidc_registry_free(registry);
    return status;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "version") == 0) {
        return mode_version();
    }
    if (strcmp(mode, "device-config") == 0) {
        return mode_device_config();
    }
    static const char *const modes[] = {"device-token", "well-known", "ciba", "ciba-events",
                                        "qr", "qr-events", "token-manager"};
    int known = 0;
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        known |= strcmp(mode, modes[i]) == 0;
    }
    if (!known) {
        fprintf(stderr,
                "usage: %s version | device-config | device-token | well-known | ciba | "
                "ciba-events | qr | qr-events | token-manager\n",
                argv[0]);
        return 2;
    }
    onesoidc_client *client = NULL;
    int status = onesoidc_client_new(NULL, NULL, &client); /* defaults or the environment */
    if (status != ONESOIDC_OK) {
        return fail("onesoidc_client_new", status);
    }
    if (strcmp(mode, "device-token") == 0) {
        status = mode_device_token(client);
    } else if (strcmp(mode, "well-known") == 0) {
        status = mode_well_known(client);
    } else if (strcmp(mode, "ciba") == 0) {
        status = mode_ciba(client);
    } else if (strcmp(mode, "ciba-events") == 0) {
        status = mode_ciba_events(client);
    } else if (strcmp(mode, "qr") == 0) {
        status = mode_qr(client);
    } else if (strcmp(mode, "qr-events") == 0) {
        status = mode_qr_events(client);
    } else {
        status = mode_token_manager(client);
    }
    onesoidc_client_free(client);
    return status;
}
