"""MOL network and its maths (pure PyTorch): `MOL`, its output, and the official-checkpoint loader."""
from mol_model.model import MOL, MOLOutput
from mol_model.official import load_official_state_dict

__all__ = ["MOL", "MOLOutput", "load_official_state_dict"]
