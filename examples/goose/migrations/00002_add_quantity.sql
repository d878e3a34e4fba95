-- +goose Up
ALTER TABLE orders ADD COLUMN quantity int NOT NULL DEFAULT 1;

-- +goose Down
ALTER TABLE orders DROP COLUMN quantity;
