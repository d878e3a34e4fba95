-- +goose Up
CREATE TABLE orders (
    id         bigserial PRIMARY KEY,
    item       text NOT NULL,
    created_by text NOT NULL DEFAULT current_user
);

-- +goose Down
DROP TABLE orders;
