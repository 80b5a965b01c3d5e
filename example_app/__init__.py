"""A chat page that survives reloads, network drops and server switches: the demo of
fastapi-streamhub, and the code to copy from. The app itself is `example_app.app:app`."""
