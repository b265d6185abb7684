"""The operator CLI, ``callcenter``: one module per command group."""
