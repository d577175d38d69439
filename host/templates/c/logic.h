/* The decision of the {{name}} plugin, as plain C: no bindings, no I/O, so
 * `make test` checks it natively. plugin.c is the component glue. */
#ifndef LOGIC_H
#define LOGIC_H

#include <stdbool.h>
#include <stddef.h>

/* Whether the message text `body` (`len` bytes, not NUL-terminated) is
 * "ping", in any case, with any spaces around it. */
bool is_ping(const char *body, size_t len);

#endif
