"""What people register: model versions, environments, computes (the server's side)."""
