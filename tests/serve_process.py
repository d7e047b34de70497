"""Real ``replyguard serve`` / ``replyguard worker`` processes for tests (see worker/web/process.py)."""

from worker.web.process import ServeProcess, WorkerProcess, free_port

__all__ = ["ServeProcess", "WorkerProcess", "free_port"]
