// For the native tests of logic/ (`go test ./logic`). `wasmbot build`
// assembles the component's module itself: the generated bindings, their
// runtime package and this folder's code, under the same module path.
module wit_component

go 1.25
