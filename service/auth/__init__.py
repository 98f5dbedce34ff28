"""Users, roles and tokens (OAuth2 password flow), and the scope rules every endpoint enforces."""
