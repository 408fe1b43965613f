/*
 * sctp_peer: a Linux kernel SCTP peer for interop tests of rserpool-sctp.
 *
 * Runs inside the rsplib-vm guest (kernel 6.1, net.sctp.udp_port/encap_port = 9899, so all of
 * its SCTP travels over UDP per RFC 6951). Built statically on the host; only the kernel UAPI
 * header <linux/sctp.h> is needed.
 *
 *   sctp_peer server PORT            accept one association; echo every message back on its
 *                                    stream with its PPID; report how it ended
 *   sctp_peer client ADDR PORT N END send N messages on streams 0-3 with PPIDs 11, 12 and 99
 *                                    (the last one 20000 bytes, larger than the MTU), check each
 *                                    echo, then END = shutdown (graceful) or abort
 *
 * Every outcome is printed as one line starting with "RESULT ".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/sctp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef IPPROTO_SCTP
#define IPPROTO_SCTP 132
#endif
#ifndef SOL_SCTP
#define SOL_SCTP 132
#endif

#define BIG 20000
static const unsigned ppids[3] = {11, 12, 99};

static void subscribe(int fd) {
    struct sctp_event_subscribe ev;
    memset(&ev, 0, sizeof ev);
    ev.sctp_data_io_event = 1;
    ev.sctp_association_event = 1;
    ev.sctp_shutdown_event = 1;
    if (setsockopt(fd, SOL_SCTP, SCTP_EVENTS, &ev, sizeof ev) < 0) {
        perror("SCTP_EVENTS");
        exit(2);
    }
    struct sctp_initmsg im;
    memset(&im, 0, sizeof im);
    im.sinit_num_ostreams = 8;
    im.sinit_max_instreams = 8;
    setsockopt(fd, SOL_SCTP, SCTP_INITMSG, &im, sizeof im);
}

/* Receives one whole user message. Returns its length, 0 on shutdown, -1 on error.
 * Notifications are skipped. */
static ssize_t recv_msg(int fd, char *buf, size_t cap, struct sctp_sndrcvinfo *info) {
    size_t got = 0;
    for (;;) {
        char cbuf[CMSG_SPACE(sizeof(struct sctp_sndrcvinfo))];
        struct iovec iov = {buf + got, cap - got};
        struct msghdr m;
        memset(&m, 0, sizeof m);
        m.msg_iov = &iov;
        m.msg_iovlen = 1;
        m.msg_control = cbuf;
        m.msg_controllen = sizeof cbuf;
        ssize_t n = recvmsg(fd, &m, 0);
        if (n <= 0)
            return n;
        if (m.msg_flags & MSG_NOTIFICATION) {
            union sctp_notification *sn = (union sctp_notification *)(buf + got);
            if (sn->sn_header.sn_type == SCTP_SHUTDOWN_EVENT)
                printf("event: SHUTDOWN\n");
            else if (sn->sn_header.sn_type == SCTP_ASSOC_CHANGE)
                printf("event: ASSOC_CHANGE state %u\n", sn->sn_assoc_change.sac_state);
            fflush(stdout);
            continue;
        }
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
            if (c->cmsg_level == IPPROTO_SCTP && c->cmsg_type == SCTP_SNDRCV)
                memcpy(info, CMSG_DATA(c), sizeof *info);
        got += (size_t)n;
        if (m.msg_flags & MSG_EOR)
            return (ssize_t)got;
        if (got == cap) {
            errno = EMSGSIZE;
            return -1;
        }
    }
}

static int send_msg(int fd, const char *buf, size_t len, uint16_t stream, uint32_t ppid_host) {
    char cbuf[CMSG_SPACE(sizeof(struct sctp_sndrcvinfo))];
    memset(cbuf, 0, sizeof cbuf);
    struct iovec iov = {(void *)buf, len};
    struct msghdr m;
    memset(&m, 0, sizeof m);
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = cbuf;
    m.msg_controllen = sizeof cbuf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = IPPROTO_SCTP;
    c->cmsg_type = SCTP_SNDRCV;
    c->cmsg_len = CMSG_LEN(sizeof(struct sctp_sndrcvinfo));
    struct sctp_sndrcvinfo *si = (struct sctp_sndrcvinfo *)CMSG_DATA(c);
    si->sinfo_stream = stream;
    si->sinfo_ppid = htonl(ppid_host);
    return sendmsg(fd, &m, 0) == (ssize_t)len ? 0 : -1;
}

static int server(int port) {
    int l = socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP);
    if (l < 0) {
        perror("socket");
        return 2;
    }
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    subscribe(l);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 4) < 0) {
        perror("bind/listen");
        return 2;
    }
    printf("READY server port %d\n", port);
    fflush(stdout);
    int fd = accept(l, NULL, NULL);
    if (fd < 0) {
        perror("accept");
        return 2;
    }
    subscribe(fd);
    static char buf[1 << 17];
    unsigned count = 0;
    for (;;) {
        struct sctp_sndrcvinfo info;
        memset(&info, 0, sizeof info);
        ssize_t n = recv_msg(fd, buf, sizeof buf, &info);
        if (n == 0) {
            printf("RESULT server echoed %u messages, peer shut down\n", count);
            return 0;
        }
        if (n < 0) {
            printf("RESULT server echoed %u messages, association ended: %s\n", count, strerror(errno));
            return 0;
        }
        printf("got stream %u ppid %u len %zd\n", info.sinfo_stream, ntohl(info.sinfo_ppid), n);
        fflush(stdout);
        if (send_msg(fd, buf, (size_t)n, info.sinfo_stream, ntohl(info.sinfo_ppid)) < 0) {
            printf("RESULT server send failed: %s\n", strerror(errno));
            return 1;
        }
        count++;
    }
}

static int client(const char *addr, int port, int n, const char *end) {
    int fd = socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP);
    if (fd < 0) {
        perror("socket");
        return 2;
    }
    subscribe(fd);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, addr, &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        printf("RESULT client connect failed: %s\n", strerror(errno));
        return 1;
    }
    static char out[BIG], in[1 << 17];
    for (int i = 0; i < n; i++) {
        size_t len = i == n - 1 ? BIG : 100 + (size_t)i;
        memset(out, 'a' + i % 26, len);
        uint16_t stream = (uint16_t)(i % 4);
        uint32_t ppid = ppids[i % 3];
        if (send_msg(fd, out, len, stream, ppid) < 0) {
            printf("RESULT client send %d failed: %s\n", i, strerror(errno));
            return 1;
        }
        struct sctp_sndrcvinfo info;
        memset(&info, 0, sizeof info);
        ssize_t got = recv_msg(fd, in, sizeof in, &info);
        if (got != (ssize_t)len || memcmp(in, out, len) != 0 || info.sinfo_stream != stream ||
            ntohl(info.sinfo_ppid) != ppid) {
            printf("RESULT client echo %d wrong: len %zd/%zu stream %u/%u ppid %u/%u\n", i, got, len,
                   info.sinfo_stream, stream, ntohl(info.sinfo_ppid), ppid);
            return 1;
        }
    }
    if (strcmp(end, "abort") == 0) {
        struct linger lg = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(fd);
    printf("RESULT client ok %d echoes, %s\n", n, end);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 3 && strcmp(argv[1], "server") == 0)
        return server(atoi(argv[2]));
    if (argc == 6 && strcmp(argv[1], "client") == 0)
        return client(argv[2], atoi(argv[3]), atoi(argv[4]), argv[5]);
    fprintf(stderr, "usage: sctp_peer server PORT | client ADDR PORT N shutdown|abort\n");
    return 2;
}
