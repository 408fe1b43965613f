/* The Ping Pong Protocol of RSPLIB's demo service (PingPongPool, PPID 33), as on the wire:
 * every message starts with type, flags and length (network byte order); a Ping carries a
 * message number, a Pong echoes it with the PE's reply number; the PE's cookie after each
 * Pong is "<PP-TD1>" and the next reply number, so a new PE continues the count. */
#ifndef PINGPONG_H
#define PINGPONG_H
#include <endian.h>
#include <stdint.h>

#define PPID_PINGPONG 33
#define PINGPONG_PING 0x01
#define PINGPONG_PONG 0x02
#define PINGPONG_COOKIE_ID "<PP-TD1>"

struct pingpong_header {
  uint8_t type;
  uint8_t flags;
  uint16_t length; /* of the whole message */
} __attribute__((packed));

struct pingpong_ping {
  struct pingpong_header header;
  uint64_t message_no;
  char data[];
} __attribute__((packed));

struct pingpong_pong {
  struct pingpong_header header;
  uint64_t message_no;
  uint64_t reply_no;
  char data[];
} __attribute__((packed));

struct pingpong_cookie {
  char id[8];
  uint64_t reply_no;
} __attribute__((packed));
#endif
