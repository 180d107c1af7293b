"""Answers: the model file, the one scheduler that owns the llama.cpp
context, the line in front of it, the prompts, and answering (retrieval,
prompt, citations; nothing of Gradio).

It may import ``mentor.course``, ``mentor.index`` and ``mentor.settings``.
"""
