// {{name}}: a wasmbot behaviour plugin in Go.
//
// Answers "ping" with "pong" (setting `reply`). This file is the component
// glue: `wasmbot build {{name}}` generates the bindings of wit/ (the
// contract) as the packages `wit_component/wasmbot_plugin_types`,
// `…/wasmbot_plugin_config`, `…/wasmbot_plugin_log`, `…/wasmbot_plugin_http`,
// `…/wasmbot_plugin_state` (its key-value store) and `…/wasi_http_*`, and compiles this folder's .go files as the package
// that holds the exports (Describe and Handle). The decision is plain Go in
// logic/, tested natively with `go test ./logic`.
package export_wasmbot_plugin_handler

import (
	"wit_component/logic"
	"wit_component/wasmbot_plugin_config"
	"wit_component/wasmbot_plugin_log"
	"wit_component/wasmbot_plugin_types"

	witTypes "go.bytecodealliance.org/pkg/wit/types"
)

type Reply = wasmbot_plugin_types.Reply

// Describe says what the plugin is and which messages it is called for.
func Describe() wasmbot_plugin_types.PluginInfo {
	return wasmbot_plugin_types.PluginInfo{
		Name:        "{{name}}",
		Version:     "0.1.0",
		Description: "Answers ping with pong",
		Priority:    100,
		Settings: []wasmbot_plugin_types.Setting{
			{Key: "reply", Default: witTypes.Some("pong"), Description: "what to answer ping with"},
		},
		// The host calls Handle only for messages that match one of these:
		// MakeTriggerWord, ...Contains, ...Prefix, ...Pattern (a regex),
		// ...Media (a content-type prefix) or MakeTriggerEverything().
		Triggers: []wasmbot_plugin_types.Trigger{wasmbot_plugin_types.MakeTriggerWord("ping")},
	}
}

// Handle answers one message: Ok(Some(reply)), Ok(None) to stay silent, or
// Err(reason) when the plugin failed (the host logs it; others still answer).
func Handle(msg wasmbot_plugin_types.Message) witTypes.Result[witTypes.Option[Reply], string] {
	if !logic.IsPing(msg.Body) {
		return witTypes.Ok[witTypes.Option[Reply], string](witTypes.None[Reply]())
	}
	wasmbot_plugin_log.Log(wasmbot_plugin_log.LevelInfo, "ping from "+msg.MessageSid)
	// Configuration: WASMBOT_{{env_name}}__REPLY or [plugins.{{name}}].
	text := wasmbot_plugin_config.Get("reply").SomeOr("pong")
	reply := Reply{Text: witTypes.Some(text), Media: []string{}}
	return witTypes.Ok[witTypes.Option[Reply], string](witTypes.Some(reply))
}
