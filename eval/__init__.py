"""replyguard evaluation: metrics, threshold selection and reports.

Import submodules by name (``from eval import metrics``); never ``import eval``,
which would shadow the builtin.
"""
