/* {{name}}: a wasmbot behaviour plugin in C.
 *
 * Answers "ping" with "pong" (setting `reply`). The bindings in gen/ are
 * generated from wit/ (the contract) by every `wasmbot build {{name}}`: read
 * gen/behaviour.h for the types and the host's functions (log, config,
 * http, and wasi:http). The decision is plain C in logic.c, tested
 * natively with `make test`.
 *
 * Memory: the host hands over what it passes in (free `msg` with
 * wasmbot_plugin_types_message_free) and frees what is returned, so
 * returned strings and lists must be malloc'ed (behaviour_string_dup). */
#include <stdlib.h>

#include "behaviour.h"
#include "logic.h"

void exports_wasmbot_plugin_handler_describe(exports_wasmbot_plugin_handler_plugin_info_t *ret) {
  behaviour_string_dup(&ret->name, "{{name}}");
  behaviour_string_dup(&ret->version, "0.1.0");
  behaviour_string_dup(&ret->description, "Answers ping with pong");
  ret->priority = 100;

  ret->settings.len = 1;
  ret->settings.ptr = calloc(1, sizeof(wasmbot_plugin_types_setting_t));
  wasmbot_plugin_types_setting_t *reply = &ret->settings.ptr[0];
  behaviour_string_dup(&reply->key, "reply");
  reply->default_.is_some = true;
  behaviour_string_dup(&reply->default_.val, "pong");
  behaviour_string_dup(&reply->description, "what to answer ping with");

  /* The host calls handle() only for messages that match one of these:
   * WASMBOT_PLUGIN_TYPES_TRIGGER_WORD, _CONTAINS, _PREFIX, _PATTERN (a
   * regex), _MEDIA (a content-type prefix) or _EVERYTHING. */
  ret->triggers.len = 1;
  ret->triggers.ptr = calloc(1, sizeof(wasmbot_plugin_types_trigger_t));
  ret->triggers.ptr[0].tag = WASMBOT_PLUGIN_TYPES_TRIGGER_WORD;
  behaviour_string_dup(&ret->triggers.ptr[0].val.word, "ping");
}

/* true and *ret: the answer (ret->is_some = false: stay silent);
 * false and *err: this plugin failed (logged by the host). */
bool exports_wasmbot_plugin_handler_handle(exports_wasmbot_plugin_handler_message_t *msg,
                                           exports_wasmbot_plugin_handler_option_reply_t *ret,
                                           behaviour_string_t *err) {
  (void)err;
  bool ping = is_ping((const char *)msg->body.ptr, msg->body.len);
  wasmbot_plugin_types_message_free(msg);
  if (!ping) {
    ret->is_some = false; /* not for us */
    return true;
  }

  behaviour_string_t line;
  behaviour_string_set(&line, "ping");
  wasmbot_plugin_log_log(WASMBOT_PLUGIN_LOG_LEVEL_INFO, &line);

  /* Configuration: WASMBOT_{{env_name}}__REPLY or [plugins.{{name}}]. */
  behaviour_string_t key, text;
  behaviour_string_set(&key, "reply");
  if (!wasmbot_plugin_config_get(&key, &text)) behaviour_string_dup(&text, "pong");

  ret->is_some = true;
  ret->val.text.is_some = true;
  ret->val.text.val = text; /* handed over: the host frees it */
  ret->val.media.len = 0;
  ret->val.media.ptr = NULL;
  return true;
}
