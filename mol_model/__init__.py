"""MOL network and its maths (pure PyTorch): `MOL`, its output, the official-checkpoint loader and the
initialisation of the flow and landmark heads at their trivial baselines."""
from mol_model.initialisation import init_heads_at_baselines
from mol_model.model import MOL, MOLOutput
from mol_model.official import load_official_state_dict

__all__ = ["MOL", "MOLOutput", "init_heads_at_baselines", "load_official_state_dict"]
