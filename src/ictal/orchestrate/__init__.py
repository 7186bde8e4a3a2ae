"""Orchestration: commands that run other ictal commands as child processes (a sweep of
training runs, a command under a time limit, the same command on several ranks).

It sits above train and below the command line; import the submodules you need.
"""
