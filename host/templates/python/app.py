"""{{name}}: a wasmbot behaviour plugin in Python.

Answers "ping" with "pong" (setting `reply`), and "status" with the HTTP
status of its `status_url` setting. The `wit_world` bindings are generated
by componentize-py from wit/wasmbot.wit (the contract) when the plugin is built.
"""

from typing import Optional

from componentize_py_types import Err
from logic import answer
from wit_world import exports
from wit_world.imports import config, http, log, types


class Handler(exports.Handler):
    def describe(self) -> types.PluginInfo:
        return types.PluginInfo(
            name="{{name}}",
            version="0.1.0",
            description="Answers ping with pong",
            priority=100,
            settings=[
                types.Setting(key="reply", default="pong", description="what to answer ping with"),
                # A URL setting also allows HTTP to its host.
                types.Setting(
                    key="status_url",
                    default="https://status.example.com/",
                    description='checked when someone sends "status"',
                ),
            ],
            # The host calls handle() only for messages that match one of
            # these: Trigger_Word, _Contains, _Prefix, _Pattern (a regex),
            # _Media (a content-type prefix) or Trigger_Everything().
            triggers=[types.Trigger_Word("ping"), types.Trigger_Word("status")],
        )

    def handle(self, msg: types.Message) -> Optional[types.Reply]:
        # Configuration: WASMBOT_{{env_name}}__REPLY or [plugins.{{name}}].
        reply = config.get("reply") or "pong"
        text = answer(msg.body, reply)
        if text is not None:
            log.log(log.Level.INFO, f"ping from {msg.message_sid}")
            return types.Reply(text=text, media=[])
        if msg.body.strip().lower() == "status":
            # Outbound HTTP goes through the host: allowed hosts only.
            request = http.Request(
                method=http.Method.GET, url=config.get("status_url") or "", headers=[], body=None
            )
            try:
                response = http.send(request)
                return types.Reply(text=f"status: HTTP {response.status}", media=[])
            except Err as error:  # error.value is an http.Error
                return types.Reply(text=f"status unknown: {error.value}", media=[])
        return None  # not for us: stay silent
