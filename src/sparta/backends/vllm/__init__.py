"""The vLLM engine (``pool.engine=vllm``): members are LoRA adapters on vLLM OpenAI-compatible server(s).

``server`` starts and stops a local server, ``client`` shards HTTP requests over the servers, ``adapters`` keeps
each member's current adapter loaded under a name of its own, ``generation`` and ``judges`` map answering and the
three judges onto the completions API, and ``tribe`` composes them with a learner that trains (docs/scaling.md).
"""
