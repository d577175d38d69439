/* Native tests of logic.c: `make test`. Not part of the component
 * (`wasmbot build` leaves out test_*.c). */
#include <stdio.h>
#include <string.h>

#include "logic.h"

static int failures = 0;

static void check(const char *body, bool expected) {
  if (is_ping(body, strlen(body)) != expected) {
    fprintf(stderr, "is_ping(\"%s\") should be %s\n", body, expected ? "true" : "false");
    failures++;
  }
}

int main(void) {
  check("ping", true);
  check("PING", true);
  check("  Ping \n", true);
  check("", false);
  check("pin", false);
  check("ping pong", false);
  check("pinging", false);
  if (failures) return 1;
  printf("ok: logic\n");
  return 0;
}
