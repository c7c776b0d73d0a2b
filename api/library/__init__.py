"""Library lending for the 通借通还 network: branches, catalogue, readers, loans, holds and notices."""
