"""A harness that runs Azure Pipelines YAML jobs the way the agent does, against local stand-ins.
See runner.py (the agent's semantics), templates.py (compile time), tasks.py (task equivalents) and org.py
(the Azure DevOps project: repositories, variable groups, service connections)."""
