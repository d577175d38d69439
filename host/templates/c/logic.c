#include "logic.h"

#include <ctype.h>

bool is_ping(const char *body, size_t len) {
  size_t start = 0, end = len;
  while (start < end && isspace((unsigned char)body[start])) start++;
  while (end > start && isspace((unsigned char)body[end - 1])) end--;
  static const char word[] = "ping";
  if (end - start != sizeof word - 1) return false;
  for (size_t i = 0; i < sizeof word - 1; i++) {
    if (tolower((unsigned char)body[start + i]) != word[i]) return false;
  }
  return true;
}
