/*
 * The C API's test: every function of onesoidc.h, its error paths (a
 * missing file, a bad field, the provider down, denied, expired, cancelled,
 * NULL and non-UTF-8 arguments), callbacks and their cancellation, and
 * calls from several threads at once on one client. `cargo xtask test`
 * runs it under valgrind (no definitely lost blocks, no invalid reads or
 * writes) against `onesoidc dev-idp` started with
 *   --auto-approve-ms 300 --ciba-interval 1s --qr-interval 1s
 *   --ciba-expires-in 6s --qr-expires-in 6s
 * and a device registered with it:
 *
 *   ONESOIDC_TEST_DEVICE_DIR=DIR ONESOIDC_TEST_HOST=http://127.0.0.1:PORT test_onesoidc
 *
 * With ONESOIDC_TEST_TPM_DEVICE_DIR (a device registered with
 * `onesoidc register --security tpm` on the TPM that TPM2TOOLS_TCTI names,
 * and a library built with the `tpm` feature) it also loads that TPM
 * identity and gets a device token and a CIBA login signed in the TPM.
 *
 * The test switches the provider's auto-approval (deny, none) through its
 * control API (plain HTTP on loopback) and restores it. Every wait has a
 * deadline. The last line is "N passed, M failed"; the exit status is 0
 * only when nothing failed.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <onesoidc.h>

/* ---------------------------------------------------------------- checks */

static int passed;
static int failed;
static const char *current_test = "";

#define CHECK(cond, ...) check((cond), #cond, __FILE__, __LINE__, __VA_ARGS__)

static void check(int ok, const char *expr, const char *file, int line, const char *fmt, ...) {
    if (ok) {
        passed++;
        return;
    }
    failed++;
    fprintf(stderr, "FAIL %s: %s:%d: %s: ", current_test, file, line, expr);
    va_list args;
    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);
    fprintf(stderr, " (last error: %s)\n", onesoidc_last_error());
}

static int contains(const char *text, const char *needle) {
    return text != NULL && needle != NULL && strstr(text, needle) != NULL;
}

#define CHECK_STATUS(call, expected)                                                          \
    do {                                                                                      \
        int status_ = (call);                                                                 \
        CHECK(status_ == (expected), "%s returned %d, expected %d", #call, status_, (expected)); \
    } while (0)

/* ------------------------------------------------------------ environment */

static char device_dir[4096];
static char device_yml[4096];
static char host[256];
static int port;

static void read_environment(void) {
    const char *dir = getenv("ONESOIDC_TEST_DEVICE_DIR");
    const char *h = getenv("ONESOIDC_TEST_HOST");
    if (dir == NULL || h == NULL) {
        fprintf(stderr, "set ONESOIDC_TEST_DEVICE_DIR and ONESOIDC_TEST_HOST (see the top of %s)\n", __FILE__);
        exit(2);
    }
    snprintf(device_dir, sizeof device_dir, "%s", dir);
    snprintf(device_yml, sizeof device_yml, "%s/device.yml", dir);
    snprintf(host, sizeof host, "%s", h);
    const char *colon = strrchr(host, ':');
    port = colon ? atoi(colon + 1) : 0;
    if (port <= 0) {
        fprintf(stderr, "ONESOIDC_TEST_HOST must be http://127.0.0.1:PORT, not %s\n", host);
        exit(2);
    }
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    char *text = calloc(1, 65536);
    size_t n = fread(text, 1, 65535, f);
    text[n] = '\0';
    fclose(f);
    return text;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (f != NULL) {
        fputs(text, f);
        fclose(f);
    }
}

/* Copies device.yml into `dir` with the line starting with `key:` replaced. */
static void copy_device_yml(const char *dir, const char *key, const char *line) {
    char *text = read_file(device_yml);
    char out[65536];
    size_t used = 0;
    out[0] = '\0';
    for (char *cursor = text; cursor && *cursor;) {
        char *end = strchr(cursor, '\n');
        size_t len = end ? (size_t)(end - cursor) : strlen(cursor);
        if (strncmp(cursor, key, strlen(key)) == 0 && cursor[strlen(key)] == ':') {
            used += (size_t)snprintf(out + used, sizeof out - used, "%s\n", line);
        } else {
            used += (size_t)snprintf(out + used, sizeof out - used, "%.*s\n", (int)len, cursor);
        }
        cursor = end ? end + 1 : cursor + len;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/device.yml", dir);
    write_file(path, out);
    free(text);
}

/* A loopback port nothing listens on (bound, then closed). */
static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    bind(fd, (struct sockaddr *)&addr, sizeof addr);
    getsockname(fd, (struct sockaddr *)&addr, &len);
    close(fd);
    return ntohs(addr.sin_port);
}

/* One HTTP/1.1 request to the dev IdP's control API; its status code, or -1. */
static int control(const char *method, const char *path, const char *body) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return -1;
    }
    struct timeval deadline = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &deadline, sizeof deadline);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &deadline, sizeof deadline);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        close(fd);
        return -1;
    }
    char request[2048];
    int n = snprintf(request, sizeof request,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     method, path, port, strlen(body), body);
    if (write(fd, request, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    char response[256] = {0};
    ssize_t got = read(fd, response, sizeof response - 1);
    close(fd);
    int status = -1;
    if (got > 12) {
        sscanf(response, "HTTP/1.1 %d", &status);
    }
    return status;
}

/* The provider answers every CIBA request and QR session with `decision`
   ("approve", "deny") after 300 ms, or not at all (NULL). */
static void auto_answer(const char *decision) {
    char body[128];
    if (decision) {
        snprintf(body, sizeof body, "{\"after_ms\": 300, \"decision\": \"%s\"}", decision);
    } else {
        snprintf(body, sizeof body, "null");
    }
    int status = control("PUT", "/control/auto-approve", body);
    CHECK(status == 200, "PUT /control/auto-approve %s answered %d", body, status);
}

/* --------------------------------------------------------- event capture */

#define MAX_EVENTS 64

/* What a callback saw; shared with the test's thread under `lock`. */
struct capture {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int kinds[MAX_EVENTS];
    int statuses[MAX_EVENTS];
    int count;
    int authenticated_subject_ok;
    int qr_url_ok;
    int wait_from_callback; /* what onesoidc_login_wait returned inside a callback */
    int wrong_kind_tokens;  /* onesoidc_event_tokens on a non-AUTHENTICATED event */
    char session_id[128];
    onesoidc_login *login; /* for the cancel/free-from-callback tests */
    int cancel_on_first;
    int free_on_first;
    int cancel_qr_on_phone;
};

static void capture_init(struct capture *c) {
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->changed, NULL);
    c->wait_from_callback = -1;
    c->wrong_kind_tokens = -1;
}

static void capture_destroy(struct capture *c) {
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->changed);
}

static void on_event(void *user_data, const onesoidc_event *event) {
    struct capture *c = user_data;
    int kind = onesoidc_event_kind(event);
    const char *message = onesoidc_event_message(event);
    if (message == NULL || *message == '\0') {
        failed++;
        fprintf(stderr, "FAIL: event %d without a message\n", kind);
    }
    pthread_mutex_lock(&c->lock);
    if (c->count < MAX_EVENTS) {
        c->kinds[c->count] = kind;
        c->statuses[c->count] = onesoidc_event_status(event);
        c->count++;
    }
    onesoidc_login *login = c->login;
    int first = c->count == 1;
    pthread_mutex_unlock(&c->lock);

    if (kind == ONESOIDC_EVENT_AUTHENTICATED) {
        onesoidc_tokens *tokens = NULL;
        char *subject = NULL;
        if (onesoidc_event_tokens(event, &tokens) == ONESOIDC_OK &&
            onesoidc_tokens_subject(tokens, &subject) == ONESOIDC_OK && subject &&
            strcmp(subject, "alice") == 0) {
            c->authenticated_subject_ok = 1;
        }
        onesoidc_string_free(subject);
        onesoidc_tokens_free(tokens);
        if (login != NULL) {
            c->wait_from_callback = onesoidc_login_wait(login, 10);
        }
    } else if (c->wrong_kind_tokens == -1) {
        onesoidc_tokens *tokens = NULL;
        c->wrong_kind_tokens = onesoidc_event_tokens(event, &tokens);
        onesoidc_tokens_free(tokens);
    }
    if (kind == ONESOIDC_EVENT_QR_SESSION_CREATED) {
        const char *url = onesoidc_event_url(event);
        const char *id = onesoidc_event_id(event);
        c->qr_url_ok = contains(url, "/qr/sessions/") && id != NULL && contains(url, id) &&
                       onesoidc_event_seconds(event) > 0;
        snprintf(c->session_id, sizeof c->session_id, "%s", id ? id : "");
        if (c->cancel_qr_on_phone) {
            char path[256];
            snprintf(path, sizeof path, "/control/qr/%s/cancel", c->session_id);
            int status = control("POST", path, "");
            CHECK(status == 200, "POST %s answered %d", path, status);
        }
    }
    if (first && login != NULL && c->cancel_on_first) {
        onesoidc_login_cancel(login); /* from the callback: no further callback */
    }
    if (first && login != NULL && c->free_on_first) {
        onesoidc_login_free(login); /* from the callback: returns at once */
    }
    pthread_mutex_lock(&c->lock);
    pthread_cond_broadcast(&c->changed);
    pthread_mutex_unlock(&c->lock);
}

static int count_kind(struct capture *c, int kind) {
    int n = 0;
    pthread_mutex_lock(&c->lock);
    for (int i = 0; i < c->count; i++) {
        n += c->kinds[i] == kind;
    }
    pthread_mutex_unlock(&c->lock);
    return n;
}

/* Waits up to `seconds` for `count` events of `kind`. */
static int wait_kind(struct capture *c, int kind, int count, int seconds) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += seconds;
    int rc = 0;
    int n = 0;
    pthread_mutex_lock(&c->lock);
    for (;;) {
        n = 0;
        for (int i = 0; i < c->count; i++) {
            n += c->kinds[i] == kind;
        }
        if (n >= count || rc == ETIMEDOUT) {
            break;
        }
        rc = pthread_cond_timedwait(&c->changed, &c->lock, &deadline);
    }
    pthread_mutex_unlock(&c->lock);
    return n >= count;
}

/* ----------------------------------------------------------------- tests */

static onesoidc_client *client;

static onesoidc_tokens *ciba_tokens(void) {
    onesoidc_ciba *request = NULL;
    onesoidc_tokens *tokens = NULL;
    CHECK_STATUS(onesoidc_ciba_start(client, "alice", "C test", NULL, &request), ONESOIDC_OK);
    CHECK_STATUS(onesoidc_ciba_wait(client, request, &tokens), ONESOIDC_OK);
    onesoidc_ciba_free(request);
    return tokens;
}

static void test_version_and_last_error(void) {
    current_test = "version";
    const char *version = onesoidc_version();
    CHECK(version && version[0] >= '0' && version[0] <= '9', "version %s", version ? version : "(null)");
    CHECK(strcmp(onesoidc_last_error(), "") == 0, "no error before the first failure: %s", onesoidc_last_error());
}

static void test_null_and_bad_arguments(void) {
    current_test = "arguments";
    char *text = NULL;
    onesoidc_client *none = NULL;
    CHECK_STATUS(onesoidc_client_new(NULL, NULL, NULL), ONESOIDC_INVALID_ARGUMENT);
    CHECK(contains(onesoidc_last_error(), "onesoidc_client_new") && contains(onesoidc_last_error(), "`out`"),
          "names the function and argument");
    CHECK_STATUS(onesoidc_device_token(NULL, &text), ONESOIDC_INVALID_ARGUMENT);
    CHECK(contains(onesoidc_last_error(), "`client` is NULL"), "names client");
    CHECK_STATUS(onesoidc_device_token(client, NULL), ONESOIDC_INVALID_ARGUMENT);
    CHECK(contains(onesoidc_last_error(), "`access_token`"), "names access_token");
    CHECK_STATUS(onesoidc_ciba_login(client, NULL, NULL, NULL, &text), ONESOIDC_INVALID_ARGUMENT);
    CHECK(contains(onesoidc_last_error(), "`username`"), "names username");
    CHECK(text == NULL, "out is NULL after a failure");
    CHECK_STATUS(onesoidc_ciba_login(client, "\xff\xfe", NULL, NULL, &text), ONESOIDC_INVALID_ARGUMENT);
    CHECK(contains(onesoidc_last_error(), "`username` is not UTF-8"), "non-UTF-8");
    CHECK_STATUS(onesoidc_client_new("\xc3\x28", NULL, &none), ONESOIDC_INVALID_ARGUMENT);
    CHECK(none == NULL && contains(onesoidc_last_error(), "device_yml"), "names device_yml");
    CHECK_STATUS(onesoidc_application_url(client, NULL, &text), ONESOIDC_INVALID_ARGUMENT);
    CHECK_STATUS(onesoidc_qr_render(NULL, ONESOIDC_QR_ASCII, &text), ONESOIDC_INVALID_ARGUMENT);
    CHECK_STATUS(onesoidc_qr_render("x", 42, &text), ONESOIDC_INVALID_ARGUMENT);
    CHECK(contains(onesoidc_last_error(), "`format` is 42"), "names the format");
    CHECK_STATUS(onesoidc_validate_id_token(client, NULL, NULL, NULL), ONESOIDC_INVALID_ARGUMENT);
    CHECK_STATUS(onesoidc_introspect(client, "t", NULL, NULL), ONESOIDC_INVALID_ARGUMENT);
    CHECK_STATUS(onesoidc_revoke(NULL, "t"), ONESOIDC_INVALID_ARGUMENT);
    CHECK_STATUS(onesoidc_registry_new(NULL), ONESOIDC_INVALID_ARGUMENT);
    CHECK_STATUS(onesoidc_login_wait(NULL, 0), ONESOIDC_INVALID_ARGUMENT);
    CHECK_STATUS(onesoidc_tokens_access_token(NULL, &text), ONESOIDC_INVALID_ARGUMENT);
    CHECK_STATUS(onesoidc_event_tokens(NULL, NULL), ONESOIDC_INVALID_ARGUMENT);
    /* Accessors and frees take NULL quietly. */
    CHECK(onesoidc_event_kind(NULL) == -1, "kind of NULL");
    CHECK(strcmp(onesoidc_event_message(NULL), "") == 0, "message of NULL");
    CHECK(onesoidc_event_status(NULL) == ONESOIDC_INVALID_ARGUMENT, "status of NULL");
    CHECK(onesoidc_event_seconds(NULL) == 0, "seconds of NULL");
    CHECK(onesoidc_event_id(NULL) == NULL && onesoidc_event_url(NULL) == NULL, "id, url of NULL");
    CHECK(onesoidc_tokens_expires_at(NULL) == -1 && !onesoidc_tokens_has_refresh_token(NULL), "tokens NULL");
    CHECK(onesoidc_ciba_expires_in(NULL) == 0 && onesoidc_ciba_interval(NULL) == 0, "ciba NULL");
    CHECK(onesoidc_qr_session_expires_in(NULL) == 0, "qr NULL");
    onesoidc_string_free(NULL);
    onesoidc_client_free(NULL);
    onesoidc_tokens_free(NULL);
    onesoidc_ciba_free(NULL);
    onesoidc_qr_session_free(NULL);
    onesoidc_login_cancel(NULL);
    onesoidc_login_free(NULL);
    onesoidc_registry_free(NULL);
    onesoidc_manager_free(NULL);
    onesoidc_subscription_free(NULL);
}

static void test_identity_errors(void) {
    current_test = "identity";
    onesoidc_client *bad = NULL;
    char *value = NULL;
    /* A missing file names the file. */
    CHECK_STATUS(onesoidc_client_new("/nonexistent/onesoidc/device.yml", device_dir, &bad), ONESOIDC_CONFIG);
    CHECK(bad == NULL, "no client");
    CHECK(contains(onesoidc_last_error(), "/nonexistent/onesoidc/device.yml") &&
              contains(onesoidc_last_error(), "cannot read device config"),
          "names the missing file");
    /* A bad field names the file and the field. */
    char dir[] = "/tmp/onesoidc-c-test-XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "temp dir");
    copy_device_yml(dir, "key_type", "key_type: ECC:P-999");
    char path[4096];
    snprintf(path, sizeof path, "%s/device.yml", dir);
    CHECK_STATUS(onesoidc_client_new(path, device_dir, &bad), ONESOIDC_CONFIG);
    CHECK(contains(onesoidc_last_error(), path) && contains(onesoidc_last_error(), "key_type"),
          "names the file and field");
    CHECK_STATUS(onesoidc_device_config_field(path, "id", &value), ONESOIDC_CONFIG);
    CHECK(contains(onesoidc_last_error(), "key_type"), "device_config_field names the field");
    /* A missing key names the key file. */
    CHECK_STATUS(onesoidc_client_new(device_yml, dir, &bad), ONESOIDC_CONFIG);
    CHECK(contains(onesoidc_last_error(), "private.pem"), "names the key file");
    remove(path);
    rmdir(dir);
    /* The fields of the real file. */
    CHECK_STATUS(onesoidc_device_config_field(device_yml, "issuer", &value), ONESOIDC_OK);
    CHECK(value && contains(value, host) && contains(value, "/oidc"), "issuer %s", value ? value : "(null)");
    onesoidc_string_free(value);
    CHECK_STATUS(onesoidc_device_config_field(device_yml, "location", &value), ONESOIDC_OK);
    CHECK(value && strcmp(value, "CI") == 0, "location %s", value ? value : "(null)");
    onesoidc_string_free(value);
    CHECK_STATUS(onesoidc_device_config_field(device_yml, "nonsense", &value), ONESOIDC_INVALID_ARGUMENT);
    CHECK(value == NULL && contains(onesoidc_last_error(), "\"nonsense\""), "unknown field");
}

static void test_device_token_and_provider_down(void) {
    current_test = "device token";
    char *token = NULL;
    CHECK_STATUS(onesoidc_device_token(client, &token), ONESOIDC_OK);
    CHECK(token && strlen(token) > 20, "a token");
    onesoidc_string_free(token);

    char dir[] = "/tmp/onesoidc-c-test-XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "temp dir");
    char line[128];
    int down = free_port();
    snprintf(line, sizeof line, "host: http://127.0.0.1:%d", down);
    copy_device_yml(dir, "host", line);
    char path[4096];
    snprintf(path, sizeof path, "%s/device.yml", dir);
    onesoidc_client *unreachable = NULL;
    CHECK_STATUS(onesoidc_client_new(path, device_dir, &unreachable), ONESOIDC_OK);
    CHECK_STATUS(onesoidc_device_token(unreachable, &token), ONESOIDC_NETWORK);
    char where[64];
    snprintf(where, sizeof where, "127.0.0.1:%d", down);
    CHECK(token == NULL && contains(onesoidc_last_error(), where), "names the endpoint");
    onesoidc_client_free(unreachable);
    remove(path);
    rmdir(dir);
}

/* The number of '.' in `text`: a JWS has two. */
static int dots(const char *text) {
    int n = 0;
    for (; text && *text; text++) {
        n += *text == '.';
    }
    return n;
}

static void test_dpop(void) {
    current_test = "authorize bearer";
    char *authorization = NULL, *dpop = NULL;
    CHECK_STATUS(onesoidc_authorize_request(client, "tok", "GET", "https://app.example/me?x=1", &authorization, &dpop),
                 ONESOIDC_OK);
    CHECK(authorization && strcmp(authorization, "Bearer tok") == 0 && dpop == NULL, "bearer: %s",
          authorization ? authorization : "(null)");
    onesoidc_string_free(authorization);
    CHECK_STATUS(onesoidc_authorize_request(client, "tok", "GET", "not a url", &authorization, &dpop),
                 ONESOIDC_INVALID_ARGUMENT);
    CHECK(authorization == NULL && dpop == NULL && contains(onesoidc_last_error(), "`url`"), "names url");
    CHECK_STATUS(onesoidc_authorize_request(client, "tok", NULL, "https://app.example/", &authorization, &dpop),
                 ONESOIDC_INVALID_ARGUMENT);
    CHECK(contains(onesoidc_last_error(), "`method`"), "names method");
    onesoidc_client *odd = NULL;
    CHECK_STATUS(onesoidc_client_new_with(device_yml, device_dir, 0x80, &odd), ONESOIDC_INVALID_ARGUMENT);
    CHECK(odd == NULL && contains(onesoidc_last_error(), "`flags`"), "names flags");

    current_test = "dpop";
    onesoidc_client *bound = NULL;
    CHECK_STATUS(onesoidc_client_new_with(device_yml, device_dir, ONESOIDC_CLIENT_DPOP, &bound), ONESOIDC_OK);
    onesoidc_tokens *tokens = NULL;
    char *type = NULL, *access = NULL, *json = NULL;
    CHECK_STATUS(onesoidc_device_tokens(bound, &tokens), ONESOIDC_OK);
    CHECK_STATUS(onesoidc_tokens_token_type(tokens, &type), ONESOIDC_OK);
    CHECK(type && strcmp(type, "DPoP") == 0, "token_type %s", type ? type : "(null)");
    CHECK_STATUS(onesoidc_tokens_access_token(tokens, &access), ONESOIDC_OK);
    CHECK_STATUS(onesoidc_authorize_request(bound, access, "get", "https://app.example/me?x=1#f", &authorization, &dpop),
                 ONESOIDC_OK);
    CHECK(authorization && strncmp(authorization, "DPoP ", 5) == 0 && strcmp(authorization + 5, access) == 0,
          "DPoP scheme");
    CHECK(dpop && dots(dpop) == 2 && !contains(dpop, access), "a proof, not the token");
    char *again = NULL, *authorization2 = NULL;
    CHECK_STATUS(onesoidc_authorize_request(bound, access, "GET", "https://app.example/me", &authorization2, &again),
                 ONESOIDC_OK);
    CHECK(again && dpop && strcmp(again, dpop) != 0, "a new proof for each request");
    /* The provider bound the token: token_type DPoP in its introspection. */
    bool active = false;
    CHECK_STATUS(onesoidc_introspect(bound, access, &active, &json), ONESOIDC_OK);
    CHECK(active && contains(json, "\"token_type\":\"DPoP\""), "introspection %s", json ? json : "");
    onesoidc_string_free(json);
    onesoidc_string_free(again);
    onesoidc_string_free(authorization2);
    onesoidc_string_free(authorization);
    onesoidc_string_free(dpop);
    onesoidc_string_free(access);
    onesoidc_string_free(type);
    onesoidc_tokens_free(tokens);
    onesoidc_client_free(bound);
}

static void test_applications(void) {
    current_test = "applications";
    char *url = NULL;
    char *list = NULL;
    CHECK_STATUS(onesoidc_application_url(client, "vhh-server", &url), ONESOIDC_OK);
    CHECK(url && strcmp(url, "https://vhh.example.com") == 0, "url %s", url ? url : "(null)");
    onesoidc_string_free(url);
    CHECK_STATUS(onesoidc_application_url(client, "no-such-app", &url), ONESOIDC_ERROR);
    CHECK(url == NULL && contains(onesoidc_last_error(), "no-such-app") &&
              contains(onesoidc_last_error(), "vhh-server"),
          "names the ones it knows");
    CHECK_STATUS(onesoidc_applications(client, &list), ONESOIDC_OK);
    CHECK(contains(list, "vhh-server\thttps://vhh.example.com\tVHH Server\n"), "list %s", list ? list : "");
    onesoidc_string_free(list);
}

static void test_ciba_blocking_and_steps(void) {
    current_test = "ciba";
    char *token = NULL;
    CHECK_STATUS(onesoidc_ciba_login(client, "alice", "C test", "https://vhh.example.com", &token), ONESOIDC_OK);
    CHECK(token && strlen(token) > 20, "a token");
    onesoidc_string_free(token);
    CHECK_STATUS(onesoidc_ciba_login(client, "mallory", NULL, NULL, &token), ONESOIDC_ERROR);
    CHECK(contains(onesoidc_last_error(), "unknown_user_id"), "the provider's error");

    /* Request + status: check until answered, pausing the interval. */
    onesoidc_ciba *request = NULL;
    char *id = NULL;
    CHECK_STATUS(onesoidc_ciba_start(client, "alice", NULL, NULL, &request), ONESOIDC_OK);
    CHECK_STATUS(onesoidc_ciba_auth_req_id(request, &id), ONESOIDC_OK);
    CHECK(id && strlen(id) > 10, "auth_req_id");
    onesoidc_string_free(id);
    CHECK(onesoidc_ciba_expires_in(request) == 6, "expires_in %llu", (unsigned long long)onesoidc_ciba_expires_in(request));
    CHECK(onesoidc_ciba_interval(request) == 1, "interval");
    onesoidc_tokens *tokens = NULL;
    int status = ONESOIDC_PENDING;
    for (int i = 0; i < 10 && status == ONESOIDC_PENDING; i++) {
        struct timespec pause = {(time_t)onesoidc_ciba_interval(request), 0};
        nanosleep(&pause, NULL);
        status = onesoidc_ciba_check(client, request, &tokens);
    }
    CHECK(status == ONESOIDC_OK && tokens != NULL, "approved (status %d)", status);
    onesoidc_tokens_free(tokens);
    onesoidc_ciba_free(request);

    /* Nobody answers: pending after the interval. */
    auto_answer(NULL);
    CHECK_STATUS(onesoidc_ciba_start(client, "alice", NULL, NULL, &request), ONESOIDC_OK);
    struct timespec pause = {(time_t)onesoidc_ciba_interval(request), 0};
    nanosleep(&pause, NULL);
    CHECK_STATUS(onesoidc_ciba_check(client, request, &tokens), ONESOIDC_PENDING);
    CHECK(tokens == NULL, "no tokens while pending");
    CHECK(onesoidc_ciba_interval(request) == 1, "the same interval");
    onesoidc_ciba_free(request);
    auto_answer("approve");
}

static void test_tokens_validation_introspection_revocation(void) {
    current_test = "tokens";
    onesoidc_tokens *tokens = ciba_tokens();
    char *access = NULL, *id_token = NULL, *subject = NULL, *claims = NULL, *json = NULL;
    CHECK_STATUS(onesoidc_tokens_access_token(tokens, &access), ONESOIDC_OK);
    CHECK_STATUS(onesoidc_tokens_id_token(tokens, &id_token), ONESOIDC_OK);
    CHECK_STATUS(onesoidc_tokens_subject(tokens, &subject), ONESOIDC_OK);
    CHECK(access && id_token && subject && strcmp(subject, "alice") == 0, "tokens and subject");
    CHECK(onesoidc_tokens_expires_at(tokens) > (int64_t)time(NULL), "expires in the future");
    CHECK(onesoidc_tokens_has_refresh_token(tokens), "refresh token");
    onesoidc_string_free(subject);
    subject = NULL;

    current_test = "validation";
    CHECK_STATUS(onesoidc_validate_id_token(client, id_token, &subject, &claims), ONESOIDC_OK);
    CHECK(subject && strcmp(subject, "alice") == 0, "sub");
    CHECK(contains(claims, "\"sub\":\"alice\""), "claims %s", claims ? claims : "");
    onesoidc_string_free(subject);
    onesoidc_string_free(claims);
    CHECK_STATUS(onesoidc_validate_id_token(client, id_token, NULL, NULL), ONESOIDC_OK);
    size_t len = strlen(id_token);
    memcpy(id_token + len - 4, "AAAA", 4); /* a forged signature */
    CHECK_STATUS(onesoidc_validate_id_token(client, id_token, &subject, NULL), ONESOIDC_ERROR);
    CHECK(subject == NULL && contains(onesoidc_last_error(), "signature"), "says the signature");
    CHECK(!contains(onesoidc_last_error(), access), "no token in the message");

    current_test = "introspection";
    bool active = false;
    CHECK_STATUS(onesoidc_introspect(client, access, &active, &json), ONESOIDC_OK);
    CHECK(active && contains(json, "\"active\":true") && contains(json, "\"sub\":\"alice\""), "json %s", json ? json : "");
    onesoidc_string_free(json);
    CHECK_STATUS(onesoidc_revoke(client, access), ONESOIDC_OK);
    CHECK_STATUS(onesoidc_introspect(client, access, &active, NULL), ONESOIDC_OK);
    CHECK(!active, "revoked");
    onesoidc_string_free(access);
    onesoidc_string_free(id_token);
    onesoidc_tokens_free(tokens);
}

static void test_denied_and_expired(void) {
    current_test = "denied";
    char *token = NULL;
    auto_answer("deny");
    CHECK_STATUS(onesoidc_ciba_login(client, "alice", NULL, NULL, &token), ONESOIDC_DENIED);
    CHECK(token == NULL && contains(onesoidc_last_error(), "access_denied"), "says access_denied");

    struct capture c;
    capture_init(&c);
    onesoidc_login *login = NULL;
    CHECK_STATUS(onesoidc_ciba_login_start(client, "alice", NULL, NULL, on_event, &c, &login), ONESOIDC_OK);
    CHECK_STATUS(onesoidc_login_wait(login, 30000), ONESOIDC_DENIED);
    onesoidc_login_free(login);
    CHECK(c.count >= 2 && c.kinds[c.count - 1] == ONESOIDC_EVENT_FAILED &&
              c.statuses[c.count - 1] == ONESOIDC_DENIED,
          "last event FAILED with DENIED");
    capture_destroy(&c);

    current_test = "expired";
    auto_answer(NULL);
    CHECK_STATUS(onesoidc_ciba_login(client, "alice", NULL, NULL, &token), ONESOIDC_EXPIRED);
    CHECK(contains(onesoidc_last_error(), "expired"), "says expired");
    onesoidc_qr_session *session = NULL;
    CHECK_STATUS(onesoidc_qr_create(client, &session), ONESOIDC_OK);
    CHECK_STATUS(onesoidc_qr_wait_for_scan(client, session), ONESOIDC_EXPIRED);
    CHECK(contains(onesoidc_last_error(), "QR session"), "names the QR session");
    onesoidc_qr_session_free(session);
    auto_answer("approve");
}

static void test_started_logins(void) {
    current_test = "ciba events";
    struct capture c;
    capture_init(&c);
    onesoidc_login *login = NULL;
    pthread_mutex_lock(&c.lock); /* the first callback waits until c.login is set */
    CHECK_STATUS(onesoidc_ciba_login_start(client, "alice", "C test", NULL, on_event, &c, &login), ONESOIDC_OK);
    c.login = login;
    pthread_mutex_unlock(&c.lock);
    CHECK_STATUS(onesoidc_login_wait(login, 30000), ONESOIDC_OK);
    CHECK_STATUS(onesoidc_login_wait(login, 0), ONESOIDC_OK); /* again: the same status */
    onesoidc_login_free(login);
    CHECK(c.count >= 3 && c.kinds[0] == ONESOIDC_EVENT_STARTED &&
              c.kinds[1] == ONESOIDC_EVENT_WAITING_FOR_AUTHORIZATION &&
              c.kinds[c.count - 1] == ONESOIDC_EVENT_AUTHENTICATED,
          "STARTED, WAITING..., AUTHENTICATED (%d events)", c.count);
    CHECK(c.authenticated_subject_ok, "tokens from the AUTHENTICATED event");
    CHECK(c.wait_from_callback == ONESOIDC_INVALID_ARGUMENT, "wait from its own callback is refused (%d)",
          c.wait_from_callback);
    CHECK(c.wrong_kind_tokens == ONESOIDC_INVALID_ARGUMENT, "no tokens from other events");
    capture_destroy(&c);

    current_test = "qr events";
    capture_init(&c);
    CHECK_STATUS(onesoidc_qr_login_start(client, "C test", NULL, on_event, &c, &login), ONESOIDC_OK);
    CHECK_STATUS(onesoidc_login_wait(login, 30000), ONESOIDC_OK);
    onesoidc_login_free(login);
    CHECK(c.count >= 4 && c.kinds[0] == ONESOIDC_EVENT_QR_SESSION_CREATED, "QR_SESSION_CREATED first");
    CHECK(count_kind(&c, ONESOIDC_EVENT_QR_SCANNED) == 1 && count_kind(&c, ONESOIDC_EVENT_STARTED) == 1 &&
              c.kinds[c.count - 1] == ONESOIDC_EVENT_AUTHENTICATED,
          "QR_SCANNED, STARTED, ..., AUTHENTICATED");
    CHECK(c.qr_url_ok, "the session's URL and id");
    CHECK(c.authenticated_subject_ok, "alice");
    capture_destroy(&c);

    current_test = "qr cancelled on the phone";
    auto_answer(NULL);
    capture_init(&c);
    c.cancel_qr_on_phone = 1;
    CHECK_STATUS(onesoidc_qr_login_start(client, NULL, NULL, on_event, &c, &login), ONESOIDC_OK);
    CHECK_STATUS(onesoidc_login_wait(login, 30000), ONESOIDC_DENIED);
    onesoidc_login_free(login);
    CHECK(c.kinds[c.count - 1] == ONESOIDC_EVENT_FAILED && c.statuses[c.count - 1] == ONESOIDC_DENIED,
          "FAILED with DENIED");
    capture_destroy(&c);
    auto_answer("approve");
}

/* A login started with NULL callback still ends. */
static void test_no_callback(void) {
    current_test = "no callback";
    onesoidc_login *login = NULL;
    CHECK_STATUS(onesoidc_ciba_login_start(client, "alice", NULL, NULL, NULL, NULL, &login), ONESOIDC_OK);
    CHECK_STATUS(onesoidc_login_wait(login, 30000), ONESOIDC_OK);
    onesoidc_login_free(login);
}

static void test_cancellation(void) {
    current_test = "cancel";
    auto_answer(NULL); /* nobody answers: the logins run until cancelled */
    /* Cancel, then wait: CANCELLED. The context is freed right after the
       free: a callback after it would be an invalid write valgrind reports. */
    struct capture *c = malloc(sizeof *c);
    capture_init(c);
    onesoidc_login *login = NULL;
    CHECK_STATUS(onesoidc_ciba_login_start(client, "alice", NULL, NULL, on_event, c, &login), ONESOIDC_OK);
    CHECK(wait_kind(c, ONESOIDC_EVENT_WAITING_FOR_AUTHORIZATION, 1, 30), "waiting");
    CHECK_STATUS(onesoidc_login_wait(login, 50), ONESOIDC_PENDING);
    onesoidc_login_cancel(login);
    int seen = c->count;
    CHECK_STATUS(onesoidc_login_wait(login, 30000), ONESOIDC_CANCELLED);
    CHECK(c->count == seen, "no callback after cancel returned");
    onesoidc_login_cancel(login); /* twice: harmless */
    onesoidc_login_free(login);
    capture_destroy(c);
    free(c);

    /* Free a running login without cancelling first. */
    c = malloc(sizeof *c);
    capture_init(c);
    CHECK_STATUS(onesoidc_qr_login_start(client, NULL, NULL, on_event, c, &login), ONESOIDC_OK);
    CHECK(wait_kind(c, ONESOIDC_EVENT_QR_WAITING_FOR_SCAN, 1, 30), "waiting for the scan");
    onesoidc_login_free(login);
    capture_destroy(c);
    free(c);

    /* Cancel from the first callback: no other callback runs. */
    static struct capture from_callback;
    capture_init(&from_callback);
    from_callback.cancel_on_first = 1;
    pthread_mutex_lock(&from_callback.lock);
    CHECK_STATUS(onesoidc_ciba_login_start(client, "alice", NULL, NULL, on_event, &from_callback, &login),
                 ONESOIDC_OK);
    from_callback.login = login;
    pthread_mutex_unlock(&from_callback.lock);
    CHECK_STATUS(onesoidc_login_wait(login, 30000), ONESOIDC_CANCELLED);
    CHECK(from_callback.count == 1, "one callback, then none (%d)", from_callback.count);
    onesoidc_login_free(login);

    /* Free from the first callback: it returns at once, nothing follows. */
    static struct capture freed_in_callback;
    capture_init(&freed_in_callback);
    freed_in_callback.free_on_first = 1;
    pthread_mutex_lock(&freed_in_callback.lock);
    CHECK_STATUS(onesoidc_ciba_login_start(client, "alice", NULL, NULL, on_event, &freed_in_callback, &login),
                 ONESOIDC_OK);
    freed_in_callback.login = login;
    pthread_mutex_unlock(&freed_in_callback.lock);
    CHECK(wait_kind(&freed_in_callback, ONESOIDC_EVENT_STARTED, 1, 30), "the first event");
    auto_answer("approve");

    /* More work that takes a while: any late callback of the logins freed
       above would touch freed memory now. */
    onesoidc_tokens *tokens = ciba_tokens();
    onesoidc_tokens_free(tokens);
    CHECK(freed_in_callback.count == 1, "nothing after the free (%d)", freed_in_callback.count);
}

static void test_qr_steps(void) {
    current_test = "qr";
    onesoidc_qr_session *session = NULL;
    char *url = NULL, *id = NULL, *ascii = NULL, *unicode = NULL, *svg = NULL;
    onesoidc_tokens *tokens = NULL;
    CHECK_STATUS(onesoidc_qr_create(client, &session), ONESOIDC_OK);
    CHECK_STATUS(onesoidc_qr_session_url(session, &url), ONESOIDC_OK);
    CHECK_STATUS(onesoidc_qr_session_id(session, &id), ONESOIDC_OK);
    CHECK(contains(url, host) && contains(url, id), "url %s", url ? url : "");
    CHECK(onesoidc_qr_session_expires_in(session) == 6, "expires_in");
    CHECK_STATUS(onesoidc_qr_ciba_login(client, session, NULL, NULL, &tokens), ONESOIDC_INVALID_ARGUMENT);
    CHECK(contains(onesoidc_last_error(), "onesoidc_qr_wait_for_scan"), "says to wait for the scan");
    CHECK_STATUS(onesoidc_qr_wait_for_scan(client, session), ONESOIDC_OK);
    CHECK_STATUS(onesoidc_qr_ciba_login(client, session, "C test", NULL, &tokens), ONESOIDC_OK);
    char *subject = NULL;
    onesoidc_tokens_subject(tokens, &subject);
    CHECK(subject && strcmp(subject, "alice") == 0, "alice scanned");
    onesoidc_string_free(subject);
    onesoidc_tokens_free(tokens);
    /* The codes (after the login: the scan's hint lives no longer than the
       session, and drawing is slow under valgrind). */
    CHECK_STATUS(onesoidc_qr_render(url, ONESOIDC_QR_ASCII, &ascii), ONESOIDC_OK);
    CHECK_STATUS(onesoidc_qr_render(url, ONESOIDC_QR_UNICODE, &unicode), ONESOIDC_OK);
    CHECK_STATUS(onesoidc_qr_render(url, ONESOIDC_QR_SVG, &svg), ONESOIDC_OK);
    CHECK(contains(ascii, "##") && ascii[strlen(ascii) - 1] == '\n', "ascii");
    CHECK(contains(unicode, "\xe2\x96\x88") && unicode[strlen(unicode) - 1] == '\n', "unicode blocks");
    CHECK(svg && strncmp(svg, "<?xml", 5) == 0 && contains(svg, "<svg"), "svg");
    onesoidc_string_free(url);
    onesoidc_string_free(id);
    onesoidc_string_free(ascii);
    onesoidc_string_free(unicode);
    onesoidc_string_free(svg);
    onesoidc_qr_session_free(session);
}

static void test_managers(void) {
    current_test = "managers";
    onesoidc_registry *registry = NULL;
    onesoidc_manager *device = NULL, *again = NULL, *person = NULL;
    onesoidc_subscription *device_events = NULL, *person_events = NULL;
    char *token = NULL, *names = NULL, *state = NULL;
    struct capture d, p;
    capture_init(&d);
    capture_init(&p);
    CHECK_STATUS(onesoidc_registry_new(&registry), ONESOIDC_OK);
    CHECK_STATUS(onesoidc_registry_create(registry, client, "device", ONESOIDC_REFRESH_DEVICE, &device), ONESOIDC_OK);
    CHECK_STATUS(onesoidc_registry_create(registry, client, "device", ONESOIDC_REFRESH_DEVICE, &again), ONESOIDC_ERROR);
    CHECK(again == NULL && contains(onesoidc_last_error(), "already exists"), "a name is taken once");
    CHECK_STATUS(onesoidc_registry_create(registry, client, "x", 9, &again), ONESOIDC_INVALID_ARGUMENT);
    CHECK_STATUS(onesoidc_manager_subscribe(device, NULL, NULL, &device_events), ONESOIDC_INVALID_ARGUMENT);
    CHECK_STATUS(onesoidc_manager_subscribe(device, on_event, &d, &device_events), ONESOIDC_OK);
    CHECK_STATUS(onesoidc_manager_access_token(device, &token), ONESOIDC_OK);
    CHECK(token && strlen(token) > 20, "a device token");
    onesoidc_string_free(token);
    CHECK(wait_kind(&d, ONESOIDC_EVENT_TOKEN_REFRESHED, 1, 30), "TOKEN_REFRESHED");
    CHECK_STATUS(onesoidc_registry_get(registry, "device", &again), ONESOIDC_OK);
    CHECK_STATUS(onesoidc_manager_force_refresh(again), ONESOIDC_OK);
    CHECK(wait_kind(&d, ONESOIDC_EVENT_TOKEN_REFRESHED, 2, 30), "a second TOKEN_REFRESHED");
    onesoidc_manager_free(again);
    again = NULL;
    CHECK_STATUS(onesoidc_registry_get(registry, "nobody", &again), ONESOIDC_ERROR);
    CHECK(again == NULL && contains(onesoidc_last_error(), "\"nobody\""), "names the missing manager");
    CHECK_STATUS(onesoidc_manager_state(device, &state), ONESOIDC_OK);
    CHECK(contains(state, "valid"), "state %s", state ? state : "");
    onesoidc_string_free(state);
    CHECK_STATUS(onesoidc_manager_clear(device), ONESOIDC_OK);
    CHECK(wait_kind(&d, ONESOIDC_EVENT_TOKEN_CLEARED, 1, 30), "TOKEN_CLEARED");
    /* The device manager lends its token to the client's QR requests. */
    onesoidc_qr_session *session = NULL;
    CHECK_STATUS(onesoidc_qr_create(client, &session), ONESOIDC_OK);
    onesoidc_qr_session_free(session);

    /* A person's manager: login required until tokens are stored. */
    CHECK_STATUS(onesoidc_registry_create(registry, client, "ciba_user", ONESOIDC_REFRESH_USER, &person), ONESOIDC_OK);
    CHECK_STATUS(onesoidc_manager_subscribe(person, on_event, &p, &person_events), ONESOIDC_OK);
    CHECK_STATUS(onesoidc_manager_access_token(person, &token), ONESOIDC_LOGIN_REQUIRED);
    CHECK(token == NULL && contains(onesoidc_last_error(), "ciba_user"), "names the manager");
    onesoidc_tokens *tokens = ciba_tokens();
    CHECK_STATUS(onesoidc_manager_store(person, tokens), ONESOIDC_OK);
    CHECK(wait_kind(&p, ONESOIDC_EVENT_TOKEN_STORED, 1, 30), "TOKEN_STORED");
    CHECK_STATUS(onesoidc_manager_access_token(person, &token), ONESOIDC_OK);
    char *stored = NULL;
    onesoidc_tokens_access_token(tokens, &stored);
    CHECK(token && stored && strcmp(token, stored) == 0, "the stored token");
    onesoidc_string_free(stored);
    onesoidc_string_free(token);
    onesoidc_tokens_free(tokens);
    CHECK_STATUS(onesoidc_manager_force_refresh(person), ONESOIDC_OK); /* the refresh_token grant */
    CHECK(wait_kind(&p, ONESOIDC_EVENT_TOKEN_REFRESHED, 1, 30), "the person's TOKEN_REFRESHED");
    CHECK_STATUS(onesoidc_manager_store(person, NULL), ONESOIDC_INVALID_ARGUMENT);

    CHECK_STATUS(onesoidc_registry_names(registry, &names), ONESOIDC_OK);
    CHECK(names && strcmp(names, "ciba_user\ndevice\n") == 0, "names %s", names ? names : "");
    onesoidc_string_free(names);
    onesoidc_subscription_free(person_events);
    CHECK_STATUS(onesoidc_registry_remove(registry, "ciba_user"), ONESOIDC_OK);
    CHECK_STATUS(onesoidc_registry_remove(registry, "ciba_user"), ONESOIDC_ERROR);
    onesoidc_manager_free(person);
    onesoidc_subscription_free(device_events);
    onesoidc_manager_free(device);
    onesoidc_registry_free(registry);
    capture_destroy(&d);
    capture_destroy(&p);
}

/* Several threads on one client at once. */
#define THREADS 6
#define CALLS 4

struct worker {
    pthread_t thread;
    int ok;
    int own_error_ok;
};

static void *work(void *arg) {
    struct worker *w = arg;
    for (int i = 0; i < CALLS; i++) {
        char *token = NULL;
        char *url = NULL;
        w->ok += onesoidc_device_token(client, &token) == ONESOIDC_OK;
        w->ok += onesoidc_application_url(client, "vhh-server", &url) == ONESOIDC_OK;
        onesoidc_string_free(token);
        onesoidc_string_free(url);
    }
    /* This thread's last error is its own. */
    w->own_error_ok = onesoidc_device_token(client, NULL) == ONESOIDC_INVALID_ARGUMENT &&
                      contains(onesoidc_last_error(), "`access_token`");
    return NULL;
}

static void test_threads(void) {
    current_test = "threads";
    char *token = NULL;
    CHECK_STATUS(onesoidc_ciba_login(client, NULL, NULL, NULL, &token), ONESOIDC_INVALID_ARGUMENT);
    struct worker workers[THREADS];
    memset(workers, 0, sizeof workers);
    for (int i = 0; i < THREADS; i++) {
        pthread_create(&workers[i].thread, NULL, work, &workers[i]);
    }
    char *ciba = NULL;
    CHECK_STATUS(onesoidc_ciba_login(client, "alice", NULL, NULL, &ciba), ONESOIDC_OK);
    onesoidc_string_free(ciba);
    for (int i = 0; i < THREADS; i++) {
        pthread_join(workers[i].thread, NULL);
        CHECK(workers[i].ok == 2 * CALLS, "worker %d: %d of %d calls worked", i, workers[i].ok, 2 * CALLS);
        CHECK(workers[i].own_error_ok, "worker %d's own last error", i);
    }
    CHECK(contains(onesoidc_last_error(), "`username`"), "the main thread's last error is still its own");
}

/* A TPM identity (ONESOIDC_TEST_TPM_DEVICE_DIR): its key never leaves the
 * TPM; the library loads it by itself from device.yml (`key_security: tpm`). */
static void test_tpm_identity(void) {
    current_test = "tpm identity";
    const char *dir = getenv("ONESOIDC_TEST_TPM_DEVICE_DIR");
    if (dir == NULL || dir[0] == '\0') {
        printf("tpm identity: skipped (ONESOIDC_TEST_TPM_DEVICE_DIR is not set)\n");
        return;
    }
    char yml[4096];
    snprintf(yml, sizeof yml, "%s/device.yml", dir);
    char *config = read_file(yml);
    CHECK(config && contains(config, "key_security: tpm"), "%s says key_security: tpm", yml);
    free(config);
    onesoidc_client *tpm_client = NULL;
    CHECK_STATUS(onesoidc_client_new(yml, dir, &tpm_client), ONESOIDC_OK);
    if (tpm_client == NULL) {
        fprintf(stderr, "no TPM client: %s\n", onesoidc_last_error());
        return;
    }
    char *token = NULL;
    CHECK_STATUS(onesoidc_device_token(tpm_client, &token), ONESOIDC_OK);
    CHECK(token && strlen(token) > 20, "a device token signed in the TPM");
    onesoidc_string_free(token);
    char *login = NULL;
    CHECK_STATUS(onesoidc_ciba_login(tpm_client, "alice", NULL, NULL, &login), ONESOIDC_OK);
    CHECK(login && strlen(login) > 20, "a CIBA login with the TPM identity");
    onesoidc_string_free(login);
    onesoidc_client_free(tpm_client);
    printf("tpm identity: device token and CIBA login signed in the TPM\n");
}

int main(void) {
    read_environment();
    test_version_and_last_error();
    current_test = "client";
    CHECK_STATUS(onesoidc_client_new(device_yml, device_dir, &client), ONESOIDC_OK);
    if (client == NULL) {
        fprintf(stderr, "no client: %s\n", onesoidc_last_error());
        return 1;
    }
    test_null_and_bad_arguments();
    test_identity_errors();
    test_device_token_and_provider_down();
    test_dpop();
    test_applications();
    test_ciba_blocking_and_steps();
    test_tokens_validation_introspection_revocation();
    test_denied_and_expired();
    test_started_logins();
    test_no_callback();
    test_cancellation();
    test_qr_steps();
    test_managers();
    test_threads();
    test_tpm_identity();
    onesoidc_client_free(client);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
