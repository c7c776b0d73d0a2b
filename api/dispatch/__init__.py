"""Dispatch: who does the work. Shared by tickets and elder care; never imports them."""
