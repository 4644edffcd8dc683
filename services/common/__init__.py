"""Code that more than one Tessera service needs: configuration, request context,
errors, state machines, RPC plumbing and logging."""
