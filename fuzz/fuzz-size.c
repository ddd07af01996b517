/* libFuzzer harness: vstor_parse_size ("+10G", "50G", "1048576").
 * Input: 8 bytes of `current`, then the text.  Checks: a success is at
 * most 2^63-1, a relative size is not below current and equals current +
 * the absolute parse, the decimal form parses back to itself; a failure
 * is INVAL and leaves *out alone.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void need(int cond) { if (!cond) abort(); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 8) return 0;
  uint64_t cur;
  memcpy(&cur, data, 8);
  char *s = malloc(size - 8 + 1);
  memcpy(s, data + 8, size - 8);
  s[size - 8] = 0;
  uint64_t out = 0xdeadbeef;
  int r = vstor_parse_size(s, cur, &out);
  if (r == 0) {
    need(out <= (uint64_t)INT64_MAX);
    if (s[0] == '+') {
      uint64_t abs_v = 0;
      need(out >= cur);
      need(vstor_parse_size(s + 1, 0, &abs_v) == 0 && abs_v + cur == out);
    } else {
      uint64_t o2 = 0;
      need(vstor_parse_size(s, cur ^ 0x5555, &o2) == 0 && o2 == out);  /* current ignored */
    }
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRIu64, out);
    uint64_t back = 0;
    need(vstor_parse_size(buf, 0, &back) == 0 && back == out);
  } else {
    need(r == -1 && out == 0xdeadbeef);
    need(vstor_last_code() == VSTOR_E_INVAL && vstor_last_error());
  }
  free(s);
  return 0;
}
