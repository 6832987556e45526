"""Gas prices (`eth_gas`): the hook adding Etherscan's gas oracle when a key is set."""
