/* Token service benchmark: what a token costs from entra-tokend's warm
 * cache, against reading ENTRA_TOKEN_FILE, the baseline it replaces.
 * Run by bench/run_bench_tokend.py as the session's uid with
 * IDENTITY_ENDPOINT, IDENTITY_HEADER and ENTRA_TOKEN_FILE set; prints
 * latency (median, p99, µs) of one request and requests/s with 50
 * concurrent clients, each beside the same figure for the file read. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define SEQ 2000
#define CLIENTS 50
#define SECONDS 3

static struct sockaddr_in addr;
static char request[1024];
static const char *token_file;
static atomic_bool stop;

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* One GET; true on a 200 carrying a token. */
static bool one_request(void)
{
	char buf[16384];
	size_t got = 0;
	ssize_t n;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	if (fd < 0)
		return false;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    send(fd, request, strlen(request), MSG_NOSIGNAL) < 0) {
		close(fd);
		return false;
	}
	while ((n = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0 && got + (size_t)n < sizeof(buf) - 1)
		got += (size_t)n;
	if (n > 0)
		got += (size_t)n;
	buf[got] = '\0';
	close(fd);
	ok = strncmp(buf, "HTTP/1.1 200", 12) == 0 && strstr(buf, "\"access_token\"") != NULL;
	return ok;
}

static bool one_read(void)
{
	char buf[16384];
	int fd = open(token_file, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf));
	close(fd);
	return n > 0;
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static int latency(bool (*op)(void), double *median_us, double *p99_us)
{
	static int64_t t[SEQ];

	for (int i = 0; i < SEQ; i++) {
		int64_t t0 = now_ns();

		if (!op())
			return -1;
		t[i] = now_ns() - t0;
	}
	qsort(t, SEQ, sizeof(t[0]), cmp64);
	*median_us = t[SEQ / 2] / 1000.0;
	*p99_us = t[SEQ * 99 / 100] / 1000.0;
	return 0;
}

struct worker {
	bool (*op)(void);
	long done, failed;
};

static void *work(void *arg)
{
	struct worker *w = arg;

	while (!atomic_load(&stop)) {
		if (w->op())
			w->done++;
		else
			w->failed++;
	}
	return NULL;
}

static double throughput(bool (*op)(void), long *failed)
{
	pthread_t th[CLIENTS];
	struct worker w[CLIENTS];
	long total = 0;
	int64_t t0;

	*failed = 0;
	atomic_store(&stop, false);
	t0 = now_ns();
	for (int i = 0; i < CLIENTS; i++) {
		w[i] = (struct worker){ op, 0, 0 };
		pthread_create(&th[i], NULL, work, &w[i]);
	}
	sleep(SECONDS);
	atomic_store(&stop, true);
	for (int i = 0; i < CLIENTS; i++) {
		pthread_join(th[i], NULL);
		total += w[i].done;
		*failed += w[i].failed;
	}
	return total / ((now_ns() - t0) / 1e9);
}

int main(void)
{
	const char *endpoint = getenv("IDENTITY_ENDPOINT"), *secret = getenv("IDENTITY_HEADER");
	const char *resource = "https%3A%2F%2Fmanagement.azure.com";
	double dm, dp, fm, fp, drate, frate;
	long dfail, ffail;
	char path[256];
	int port;

	token_file = getenv("ENTRA_TOKEN_FILE");
	if (endpoint == NULL || secret == NULL || token_file == NULL ||
	    sscanf(endpoint, "http://127.0.0.1:%d%255s", &port, path) != 2) {
		fprintf(stderr, "bench_tokend: needs IDENTITY_ENDPOINT, IDENTITY_HEADER, ENTRA_TOKEN_FILE\n");
		return 2;
	}
	addr.sin_family = AF_INET;
	addr.sin_port = htons((uint16_t)port);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	snprintf(request, sizeof(request),
		 "GET %s?resource=%s&api-version=2019-08-01 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		 "X-IDENTITY-HEADER: %s\r\n\r\n", path, resource, secret);
	if (latency(one_request, &dm, &dp) < 0 || latency(one_read, &fm, &fp) < 0) {
		fprintf(stderr, "bench_tokend: a request failed (is the cache warm, the uid right?)\n");
		return 1;
	}
	drate = throughput(one_request, &dfail);
	frate = throughput(one_read, &ffail);
	printf("token service, warm cache (%d sequential requests):\n", SEQ);
	printf("  entra-tokend     median %8.1f us   p99 %8.1f us\n", dm, dp);
	printf("  token file read  median %8.1f us   p99 %8.1f us\n", fm, fp);
	printf("  ratio (daemon / file): %.1fx\n", dm / fm);
	printf("token service, %d concurrent clients for %d s:\n", CLIENTS, SECONDS);
	printf("  entra-tokend     %10.0f requests/s (%ld failed)\n", drate, dfail);
	printf("  token file read  %10.0f reads/s\n", frate);
	printf("  ratio (file / daemon): %.1fx\n", frate / drate);
	return dfail > 0 ? 1 : 0;
}
