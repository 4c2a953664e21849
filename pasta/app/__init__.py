"""The Gradio app: the page, its handlers, the session recorder, views, exports and shown-image privacy."""
