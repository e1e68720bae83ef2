"""A lab's warm process: the verbs run in a fork of a process that has already imported them.

Python's start and the imports of a verb (the planner, the model, pyroute2, the printers) cost a
command 0.1-0.25 s before it does anything. A lab that is up keeps one process (server.py) with
all of that imported and the lab's last plan decoded; `kubenet-lab` (cli.py, through client.py)
hands it the command line, its working directory, environment, umask and its own standard input,
output and error, and the process forks a child that runs the verb exactly as the command would
have (the same code, the same lock, the same steps), writing straight to the person's terminal or
pipe. The command then exits as the child did, by the same code or signal.

When there is no such process (no lab up, a lab brought up by an earlier kubenet-lab, a stale
process whose code changed on disk, or not root), the command runs the verb itself and, when the
lab is up, starts one for the next command. `down` stops it; it also goes when its lab's state
is gone, or after a long idle time.
"""
