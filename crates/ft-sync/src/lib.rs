//! The sync engine: turns "mirror campus N" into durable tasks and runs them within the budget.
