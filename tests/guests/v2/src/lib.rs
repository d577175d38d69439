//! Test-only guest: built against a future major version of the plugin
//! contract (`wasmbot:plugin@2.0.0`). The host must refuse it with a message
//! that names the file and both versions.
#![cfg(target_arch = "wasm32")]

wit_bindgen::generate!({
    inline: "
        package wasmbot:plugin@2.0.0;

        interface handler {
            describe: func() -> string;
        }

        world behaviour {
            export handler;
        }
    ",
});

struct Future;

impl exports::wasmbot::plugin::handler::Guest for Future {
    fn describe() -> String {
        "from the future".into()
    }
}

export!(Future);
