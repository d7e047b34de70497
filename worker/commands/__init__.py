"""The ``replyguard`` command groups that need no ``eval/``: ``run`` (worker, ingest, serve, deliver,
demo...), ``inbox`` (queue, show, review actions), ``people`` (users, forget, retention), and
``console`` (exit codes, settings, Redis connection, terminal output). Each command module has a
``register(sub)``; the entry point, ``worker.cli``, builds the parser from them."""
