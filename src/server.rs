//! Listener, graceful shutdown and reload.
