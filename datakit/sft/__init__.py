"""SFT sets: cold-start Agentless trajectories (sft.agentless) and multi-turn agent trajectories (sft.agent)."""
