"""Personal data that can be forgotten (crypto-shredding): each payer's name and email in the
stored facts are sealed under the payer's own data key; erasing the payer deletes that key."""
