"""The lab's long-lived process: it keeps the pods' containers running and has the rules follow readiness."""
