"""The chat in the browser, over the public `rag` API: `ui.app.build_app` and `ui.app.serve`."""
