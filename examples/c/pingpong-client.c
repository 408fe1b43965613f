/* A ping-pong pool user: sends a Ping every interval, reports each Pong and every gap in the
 * PEs' reply numbers, and fails over when its PE is lost.
 *   pingpong-client [-poolhandle=PingPongPool] [-interval=MS] [-count=N] [rsplib options]
 * It ends after N Pongs (0: never) and prints a summary. */
#include <arpa/inet.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rserpool.h>

#include "pingpong.h"

static long long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

int main(int argc, char** argv) {
  const char* pool = "PingPongPool";
  int interval = 500;
  long count = 0;
  struct rsp_info info;
  rsp_initinfo(&info);
  for (int i = 1; i < argc; i++) {
    if (!strncmp(argv[i], "-poolhandle=", 12)) pool = argv[i] + 12;
    else if (!strncmp(argv[i], "-interval=", 10)) interval = atoi(argv[i] + 10);
    else if (!strncmp(argv[i], "-count=", 7)) count = atol(argv[i] + 7);
    else if (!rsp_initarg(&info, argv[i])) {
      fprintf(stderr, "pingpong-client: bad argument %s\n", argv[i]);
      return 1;
    }
  }
  if (rsp_initialize(&info) < 0) { perror("rsp_initialize"); return 1; }
  int sd = rsp_socket(0, SOCK_SEQPACKET, IPPROTO_SCTP);
  if (sd < 0 || rsp_connect(sd, (const unsigned char*)pool, strlen(pool), 0) < 0) {
    perror("pingpong-client: connect");
    return 1;
  }
  uint64_t message_no = 1, last_reply = 0;
  long pongs = 0, gaps = 0, failovers = 0;
  long long next = now_ms();
  while (count == 0 || pongs < count) {
    long long t = now_ms();
    if (t >= next) {
      struct pingpong_ping ping = {
          .header = {.type = PINGPONG_PING, .length = htons(sizeof(ping))},
          .message_no = htobe64(message_no++)};
      if (rsp_sendmsg(sd, &ping, sizeof(ping), 0, 0, htonl(PPID_PINGPONG), 0, 0, 0, -1) < 0) {
        perror("pingpong-client: send");
      }
      next = t + interval;
      continue;
    }
    struct pollfd p = {.fd = sd, .events = POLLIN};
    if (poll(&p, 1, (int)(next - t)) <= 0) continue;
    char buf[65536];
    struct rsp_sndrcvinfo ri;
    int flags = 0;
    ssize_t n = rsp_recvmsg(sd, buf, sizeof(buf), &ri, &flags, 0);
    if (n <= 0) continue;
    if (flags & MSG_RSERPOOL_NOTIFICATION) {
      const union rserpool_notification* no = (const void*)buf;
      if (no->rn_header.rn_type == RSERPOOL_FAILOVER &&
          no->rn_failover.rf_state == RSERPOOL_FAILOVER_NECESSARY) {
        printf("pingpong-client: PE lost, failing over\n");
        if (rsp_forcefailover(sd, FFF_UNREACHABLE, 0) == 0) failovers++;
        else perror("pingpong-client: failover");
        fflush(stdout);
      }
      continue;
    }
    const struct pingpong_pong* pong = (const void*)buf;
    if (n < (ssize_t)sizeof(*pong) || pong->header.type != PINGPONG_PONG) continue;
    uint64_t reply = be64toh(pong->reply_no);
    if (last_reply != 0 && reply != last_reply + 1) {
      printf("pingpong-client: gap in replies: %llu after %llu\n", (unsigned long long)reply,
             (unsigned long long)last_reply);
      gaps++;
    }
    last_reply = reply;
    pongs++;
    printf("pingpong-client: pong message=%llu reply=%llu pe=0x%08x\n",
           (unsigned long long)be64toh(pong->message_no), (unsigned long long)reply,
           ri.rinfo_pe_id);
    fflush(stdout);
  }
  printf("pingpong-client: %ld pongs, %ld gaps, %ld failovers\n", pongs, gaps, failovers);
  rsp_close(sd);
  rsp_cleanup();
  rsp_freeinfo(&info);
  return 0;
}
