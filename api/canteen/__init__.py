"""The community canteen (幸福食堂): menus, price rules by eligibility, reservations within capacity, delivery and count sheets."""
