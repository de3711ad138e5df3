"""AgentCost Feedback: what each LLM response cost, joined with how good its users said it was."""

__version__ = "0.1.0"
